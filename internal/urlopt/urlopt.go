// Package urlopt parses the values of store URL query parameters that more than one store
// accepts.
package urlopt

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses a size: a number of bytes, or a number followed by KiB or MiB. It must be at
// least 1 and at most maxSize bytes; minSize only words the error, since stores check their own
// lower bound with their other options.
func ParseSize(s string, minSize, maxSize int) (int, error) {
	mult := 1
	for _, unit := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}} {
		if n, ok := strings.CutSuffix(s, unit.suffix); ok {
			s, mult = n, unit.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > maxSize/mult {
		return 0, fmt.Errorf("want a number of bytes from %d to %d, or of KiB or MiB", minSize, maxSize)
	}
	return n * mult, nil
}
