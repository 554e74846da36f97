package remoteauth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
)

func TestSessionName(t *testing.T) {
	tests := []struct {
		clientID string
		want     string
		ok       bool
	}{
		{"", "RemoteAuth", true},
		{"alice", "RemoteAuth-alice", true},
		{"A_b-9", "RemoteAuth-A_b-9", true},
		{"-", "RemoteAuth--", true},
		{strings.Repeat("x", remoteauth.MaxSessionNameLen-len("RemoteAuth-")), "RemoteAuth-" + strings.Repeat("x", remoteauth.MaxSessionNameLen-len("RemoteAuth-")), true},
		{strings.Repeat("x", remoteauth.MaxSessionNameLen-len("RemoteAuth-")+1), "", false},
		{"a b", "", false},
		{"a.b", "", false},
		{"../a", "", false},
		{"é", "", false},
	}
	for _, tt := range tests {
		got, err := remoteauth.SessionName(tt.clientID)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("SessionName(%q) = %q, %v; want %q", tt.clientID, got, err, tt.want)
			}
			if err := remoteauth.ValidateSessionName(got); err != nil {
				t.Errorf("ValidateSessionName(SessionName(%q)): %v", tt.clientID, err)
			}
			continue
		}
		if !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("SessionName(%q) = %q, %v; want ErrInvalidSession", tt.clientID, got, err)
		}
	}
}

func TestValidateSessionName(t *testing.T) {
	for _, name := range []string{"a", "A", "-", "_", "0", "RemoteAuth", strings.Repeat("z", remoteauth.MaxSessionNameLen)} {
		if err := remoteauth.ValidateSessionName(name); err != nil {
			t.Errorf("ValidateSessionName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "a/b", "a b", "a.zip", "a\x00", "ü", strings.Repeat("z", remoteauth.MaxSessionNameLen+1)} {
		err := remoteauth.ValidateSessionName(name)
		if !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("ValidateSessionName(%q) = %v, want ErrInvalidSession", name, err)
		}
	}
}
