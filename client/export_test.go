package client

import "time"

// SetBackupTicks replaces RemoteAuth's BackupInterval and FollowUpBackupDelay, which the engine
// keeps at a minute or more, so that the tests of periodic backups do not sleep for minutes.
func SetBackupTicks(a *RemoteAuth, interval, followUp time.Duration) {
	a.tick, a.followUp = interval, followUp
}

// FindBrowser is findBrowser, for the tests to skip when no browser is installed.
var FindBrowser = findBrowser
