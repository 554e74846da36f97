package urlopt

import "testing"

func TestParseSize(t *testing.T) {
	const maxSize = 64 << 20
	for _, tt := range []struct {
		s    string
		want int
	}{
		{"1024", 1024}, {"1KiB", 1024}, {"1MiB", 1 << 20}, {"64MiB", 64 << 20}, {"3000", 3000},
	} {
		if got, err := ParseSize(tt.s, 1<<10, maxSize); err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.s, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "-5", "1.5MiB", "1 MiB", "1mib", "1GiB", "65MiB", "99999999999999999999"} {
		if got, err := ParseSize(bad, 1<<10, maxSize); err == nil {
			t.Errorf("ParseSize(%q) = %d, nil; want an error", bad, got)
		}
	}
}
