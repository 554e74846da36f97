package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// driverLog receives what store drivers log on their own: go-redis logs failed dials to stderr
// by default, unredacted. The command points it at its logger, which writes to the redacted
// stderr with -v and nowhere otherwise.
var driverLog atomic.Pointer[slog.Logger]

func init() {
	driverLog.Store(slog.New(slog.DiscardHandler))
	redis.SetLogger(redisLogger{})
}

// redisLogger is go-redis's logger: it forwards to driverLog at debug level.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	driverLog.Load().DebugContext(ctx, fmt.Sprintf(format, v...))
}
