//go:build race

package main

// raceEnabled: the tests run with the race detector, and so do the
// processes they start (TestMain builds the binary with -race).
const raceEnabled = true
