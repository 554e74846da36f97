package s3store

// SetCopyLimits sets the largest object that one CopyObject copies and the part size of the
// UploadPartCopy copies above it, until the returned function restores them. Tests that call it
// must not run in parallel.
func SetCopyLimits(maxSize, partSize int64) (restore func()) {
	oldMax, oldPart := maxCopySize, copyPartSize
	maxCopySize, copyPartSize = maxSize, partSize
	return func() { maxCopySize, copyPartSize = oldMax, oldPart }
}

// IsConditionFailed reports whether err is S3's refusal of a conditional write (412, or 409
// ConditionalRequestConflict).
var IsConditionFailed = isConditionFailed
