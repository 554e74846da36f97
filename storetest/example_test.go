package storetest_test

import (
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
	"github.com/wwebstore/wwebstore/storetest"
)

// A store's package runs the whole suite from one test function, and hands Run a function that
// makes a fresh, empty store for each subtest. (This example is compiled but not run: Run needs
// the *testing.T of a test.)
func ExampleRun() {
	// In a store's package: func TestConformance(t *testing.T) { … }
	testConformance := func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) remoteauth.Store {
			st, err := filestore.New(t.TempDir(), nil) // removed when the subtest ends
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	}
	_ = testConformance
}
