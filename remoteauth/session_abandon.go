package remoteauth

import "context"

// Abandon ends the Session without a final backup: it stops Run (a backup under way is
// abandoned; the store keeps the previous archive), releases the lease, and deletes nothing,
// remote or local. Use it instead of Close when the profile must not replace the remote archive:
// the browser never logged in during this run, or it was logged out or taken over, so that its
// profile is worth less than the last archive. After Abandon, the Session's methods return
// ErrClosed.
func (s *Session) Abandon(ctx context.Context) error {
	if err := s.shutdown(ctx); err != nil {
		return err
	}
	defer s.release()
	s.releaseLease(ctx)
	s.log.Info("abandoned without a final backup; the remote archive is kept")
	return nil
}
