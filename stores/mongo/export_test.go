package mongostore

// ParseURL exposes parseURL to the tests of package mongostore_test.
var ParseURL = parseURL
