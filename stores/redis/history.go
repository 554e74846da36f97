package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Versions lists the kept archives of session, newest first: the current archive (the meta key),
// then at most Options.Keep-1 previous ones from the history list, read together in one
// MULTI/EXEC transaction. A session without an archive has none, whatever history list it has
// (what an expiring session leaves for a moment). An ID is the archive's generation, 16 hex
// digits. It implements remoteauth.History.
func (s *Store) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	k, err := s.begin(ctx, "list versions of", session)
	if err != nil {
		return nil, err
	}
	var (
		meta *redis.SliceCmd
		hist *redis.StringSliceCmd
	)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, k.meta, "gen", "chunks", "size", "chunk_size", "saved_ms")
		if s.keep > 1 {
			hist = p.LRange(ctx, k.history, 0, int64(s.keep-2))
		}
		return nil
	})
	if err != nil {
		return nil, opError("list versions of", session, withCtxErr(ctx, err))
	}
	vals := meta.Val()
	if vals[0] == nil {
		return nil, nil
	}
	str := make([]string, len(vals))
	for i, v := range vals {
		str[i], _ = v.(string) // a missing field (saved_ms of an old archive) is ""
	}
	cur, err := parseKept(strings.Join(str, ":"))
	if err != nil {
		return nil, opError("list versions of", session, fmt.Errorf("key %s: %w", k.meta, err))
	}
	versions := []remoteauth.ArchiveVersion{cur}
	if hist != nil {
		for _, e := range hist.Val() {
			v, err := parseKept(e)
			if err != nil {
				return nil, opError("list versions of", session, fmt.Errorf("key %s: entry %q: %w", k.history, e, err))
			}
			versions = append(versions, v)
		}
	}
	return versions, nil
}

// ExtractVersion writes the kept archive of session with that ID to w, with the same reader
// lease and checks as Extract: an ExtractVersion that races the archive's eviction writes it
// whole or returns ErrNotFound. When the session keeps no archive with that ID (an ID that is not
// 16 hex digits included), it returns an error wrapping remoteauth.ErrNotFound and writes
// nothing. It implements remoteauth.History.
func (s *Store) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	k, err := s.begin(ctx, "extract", session)
	if err != nil {
		return err
	}
	if !isGen(id) {
		return opError("extract", session, fmt.Errorf("archive %q: %w: not an ID that redisstore makes (16 hex digits)", id, remoteauth.ErrNotFound))
	}
	return s.extractRetry(ctx, session, k, id, w)
}

// isGen reports whether id is a generation id as newID makes them: 16 lowercase hex digits.
func isGen(id string) bool {
	return len(id) == 16 && strings.Trim(id, "0123456789abcdef") == ""
}

// parseKept parses the description of an archive, "<gen>:<chunks>:<size>:<chunk_size>:<saved_ms>"
// (an entry of the history list, or the meta key's fields joined so); an empty saved_ms gives
// the zero time.
func parseKept(e string) (remoteauth.ArchiveVersion, error) {
	f := strings.Split(e, ":")
	if len(f) != 5 || !isGen(f[0]) {
		return remoteauth.ArchiveVersion{}, fmt.Errorf("%w: want <gen>:<chunks>:<size>:<chunk_size>:<saved_ms>", errBadArchive)
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	v := remoteauth.ArchiveVersion{ID: f[0], Size: size}
	if f[4] != "" {
		ms, err2 := strconv.ParseInt(f[4], 10, 64)
		err = errors.Join(err, err2)
		if ms > 0 {
			v.Saved = time.UnixMilli(ms)
		}
	}
	if err != nil {
		return remoteauth.ArchiveVersion{}, fmt.Errorf("%w: %w", errBadArchive, err)
	}
	return v, nil
}
