package postgresstore

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Versions lists the kept archives of session, newest first: the current archive (the session
// row), then at most Options.Keep-1 previous ones (rows of the version table), read by one query,
// so from one snapshot. Each ID is the archive's generation in decimal; Saved is when its Save
// finished writing, by the server's clock. A session without an archive has none: (nil, nil). It
// implements remoteauth.History.
func (s *Store) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	const op = "list versions of"
	if err := s.begin(ctx, op, session); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.sql.versions, s.args(session, s.keep)...)
	if err != nil {
		return nil, opError(ctx, op, session, err)
	}
	var (
		list []remoteauth.ArchiveVersion
		gen  int64
		v    remoteauth.ArchiveVersion
	)
	_, err = pgx.ForEachRow(rows, []any{&gen, &v.Size, &v.Saved}, func() error {
		v.ID = strconv.FormatInt(gen, 10)
		list = append(list, v)
		return nil
	})
	if err != nil {
		return nil, opError(ctx, op, session, err)
	}
	return list, nil
}

// ExtractVersion writes the kept archive of session with that ID to w, from one snapshot, as
// Extract does, and with the same checks (ErrCorruptArchive). When session keeps no archive with
// that ID (never had, evicted, deleted, beyond Options.Keep, or not an ID that this store makes:
// the decimal form of a positive generation), it returns an error wrapping
// remoteauth.ErrNotFound and writes nothing. An ExtractVersion that began before a Save evicted
// its archive writes it whole. It implements remoteauth.History.
func (s *Store) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	if err := s.begin(ctx, "extract", session); err != nil {
		return err
	}
	gen, ok := parseID(id)
	if !ok {
		return opError(ctx, "extract", session, fmt.Errorf("archive %q: %w: not an ID that postgresstore makes (a positive decimal integer)", id, remoteauth.ErrNotFound))
	}
	missing := fmt.Sprintf("no kept archive with ID %s in %s and %s", id, s.sessions, s.versions)
	if err := s.extract(ctx, session, w, missing, s.sql.versionMeta, session, s.keep, gen); err != nil {
		return opError(ctx, "extract", session, fmt.Errorf("archive %s: %w", id, err))
	}
	return nil
}

// parseID returns the generation that id names, and false if id is not the decimal form, without
// leading zeros or sign, of a positive int64: the only IDs that Versions gives.
func parseID(id string) (int64, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == id
}
