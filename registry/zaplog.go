package registry

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogCore sends etcd's zap records at or above a level to a slog.Logger,
// and drops them all once muted (the member's own Close reports its
// listeners' shutdown as errors).
type slogCore struct {
	log   *slog.Logger
	level zapcore.Level
	muted *atomic.Bool
	attrs []slog.Attr
}

// newZapLogger returns a zap logger for an embedded etcd member.
func newZapLogger(log *slog.Logger, level zapcore.Level, muted *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{log: log, level: level, muted: muted})
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.level && !c.muted.Load() }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	cc := *c
	cc.attrs = append(append([]slog.Attr(nil), c.attrs...), fieldAttrs(fields)...)
	return &cc
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	lvl := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		lvl = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		lvl = slog.LevelWarn
	case e.Level <= zapcore.DebugLevel:
		lvl = slog.LevelDebug
	}
	attrs := append(append([]slog.Attr{slog.String("component", "etcd")}, c.attrs...), fieldAttrs(fields)...)
	c.log.LogAttrs(context.Background(), lvl, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func fieldAttrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}
