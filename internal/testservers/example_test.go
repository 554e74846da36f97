package testservers_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/wwebstore/wwebstore/internal/testservers"
)

// A test of a command-line program against every store: each Server's URL is its argument, and
// its Env goes into the program's environment. The test package runs its tests through Main:
//
//	func TestMain(m *testing.M) { testservers.Main(m) }
//
// In-process, srv.Setenv(t) sets Env, and remoteauth.OpenStore(t.Context(), srv.URL) opens the
// store once its package is imported. (An Example has no *testing.T: this one is compiled, not
// run.)
func Example() {
	testEveryStore := func(t *testing.T) {
		for _, srv := range testservers.All(t) {
			t.Run(srv.Name, func(t *testing.T) {
				cmd := exec.CommandContext(t.Context(), "./mytool", "backup", srv.URL)
				cmd.Env = os.Environ()
				for k, v := range srv.Env {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("mytool backup %s: %v\n%s", srv.URL, err, out)
				}
			})
		}
	}
	_ = testEveryStore
}
