package config

import (
	"fmt"
	"strings"
	"time"
)

// Defaults of the usage section.
const (
	// DefaultUsageQueueSize is each sink's queue, in records.
	DefaultUsageQueueSize = 65536
	// DefaultUsageBatchSize is the largest batch a sink writes at once.
	DefaultUsageBatchSize = 256
	// DefaultUsageFlushInterval is how often a partial batch is written.
	DefaultUsageFlushInterval = 200 * time.Millisecond
	// DefaultUsageFileMaxBytes is the size at which a usage file rotates.
	DefaultUsageFileMaxBytes = 100 << 20
	// DefaultUsageFileKeep is how many rotated usage files are kept.
	DefaultUsageFileKeep = 5
	// DefaultRedisStream is the Redis stream usage records go to.
	DefaultRedisStream = "veil:usage"
	// DefaultRedisMaxLen bounds the Redis stream (approximately).
	DefaultRedisMaxLen = 1_000_000
)

// Usage sink types.
const (
	SinkStdout  = "stdout"
	SinkFile    = "file"
	SinkWebhook = "webhook"
	SinkRedis   = "redis"
)

var sinkTypes = []string{SinkStdout, SinkFile, SinkWebhook, SinkRedis}

// Usage configures where usage records go. Without a sinks entry, records
// go to stdout as JSON lines; an explicit empty list (sinks: []) writes
// them nowhere (metrics still count tokens and cost).
type Usage struct {
	// Sinks receive every record; several at once are fine.
	Sinks []UsageSink `yaml:"sinks"`
	// QueueSize is each sink's queue in records. Default 65536.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the largest batch written at once. Default 256.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is how often a partial batch is written. Default 200ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// SpoolDir, when set, is the directory of the records' write-ahead
	// log: each record is written there before its call is answered and
	// shipped to the sinks from there, and what the sinks had not handled
	// when veil was killed is replayed to them on the next start. It needs
	// a writable volume that outlives the process (an emptyDir outlives a
	// container's restart). Off when empty.
	SpoolDir string `yaml:"spool_dir"`
}

// UsageSink is one destination of usage records.
type UsageSink struct {
	// Type is stdout, file, webhook or redis.
	Type string `yaml:"type"`
	// Path is the file sink's file (absolute).
	Path string `yaml:"path"`
	// MaxBytes is the size at which the file rotates. Default 100 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// Keep is how many rotated files are kept. Default 5.
	Keep int `yaml:"keep"`
	// URL is the webhook's http(s) URL.
	URL string `yaml:"url"`
	// Headers are sent with each webhook POST; values are secret references.
	Headers Headers `yaml:"headers"`
	// SpillDir holds webhook records that could not be delivered yet
	// (absolute); they are re-sent later.
	SpillDir string `yaml:"spill_dir"`
	// Addr is a single Redis server (host:port). Exactly one of addr,
	// addrs and sentinel is required for the redis sink.
	Addr string `yaml:"addr"`
	// Addrs are some nodes (host:port) of a Redis Cluster; the stream is
	// one key, on the master of its slot.
	Addrs []string `yaml:"addrs"`
	// Sentinel finds the primary through Redis Sentinel and follows its
	// failovers.
	Sentinel RedisSentinel `yaml:"sentinel"`
	// Password references the Redis servers' password, if any.
	Password SecretRef `yaml:"password"`
	// Stream is the Redis stream. Default "veil:usage".
	Stream string `yaml:"stream"`
	// MaxLen bounds the Redis stream (approximate trimming). Default 1,000,000.
	MaxLen int `yaml:"max_len"`
}

// Price is the price of one model at one provider from a date on, in US
// dollars per million tokens.
type Price struct {
	Provider           string  `yaml:"provider"`
	Model              string  `yaml:"model"`
	InputPerMTok       float64 `yaml:"input_per_mtok"`
	CachedInputPerMTok float64 `yaml:"cached_input_per_mtok"`
	OutputPerMTok      float64 `yaml:"output_per_mtok"`
	// Effective is the first day (YYYY-MM-DD, UTC) the price applies;
	// empty means always.
	Effective string `yaml:"effective"`
}

// EffectiveTime parses Effective; the zero time when it is empty.
func (p Price) EffectiveTime() (time.Time, error) {
	if p.Effective == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.DateOnly, p.Effective)
}

func (c *Config) applyUsageDefaults() {
	u := &c.Usage
	setInt(&u.QueueSize, DefaultUsageQueueSize)
	setInt(&u.BatchSize, DefaultUsageBatchSize)
	setDuration(&u.FlushInterval, DefaultUsageFlushInterval)
	if u.Sinks == nil {
		u.Sinks = []UsageSink{{Type: SinkStdout}}
	}
	for i := range u.Sinks {
		s := &u.Sinks[i]
		s.Type = strings.ToLower(s.Type)
		switch s.Type {
		case SinkFile:
			setInt(&s.MaxBytes, DefaultUsageFileMaxBytes)
			setInt(&s.Keep, DefaultUsageFileKeep)
		case SinkRedis:
			setDefault(&s.Stream, DefaultRedisStream)
			setInt(&s.MaxLen, DefaultRedisMaxLen)
		}
	}
}

func (v *validator) usage() {
	u := v.c.Usage
	if u.QueueSize <= 0 || u.BatchSize <= 0 {
		v.fail("usage", "queue_size and batch_size must be positive")
	}
	v.timeout("usage.flush_interval", u.FlushInterval, false)
	for i, s := range u.Sinks {
		path := fmt.Sprintf("usage.sinks[%d]", i)
		switch s.Type {
		case SinkStdout:
		case SinkFile:
			if !strings.HasPrefix(s.Path, "/") {
				v.fail(path+".path", "must be an absolute file path, got %q", s.Path)
			}
			if s.MaxBytes <= 0 || s.Keep < 0 {
				v.fail(path, "max_bytes must be positive and keep not negative")
			}
		case SinkWebhook:
			if err := checkBaseURL(s.URL); err != nil {
				v.fail(path+".url", "%v", err)
			}
			if !strings.HasPrefix(s.SpillDir, "/") {
				v.fail(path+".spill_dir", "must be an absolute directory, where undelivered records wait, got %q", s.SpillDir)
			}
			v.headers(path+".headers", s.Headers)
		case SinkRedis:
			v.redisServers(path, redisServers{addr: s.Addr, addrs: s.Addrs, sentinel: s.Sentinel})
			v.optionalRef(path+".password", s.Password)
		default:
			v.fail(path+".type", "must be one of %s, got %q", strings.Join(sinkTypes, ", "), s.Type)
		}
	}
	seen := map[string]int{}
	for i, p := range v.c.Prices {
		path := fmt.Sprintf("prices[%d]", i)
		if _, ok := v.c.Provider(p.Provider); !ok {
			v.fail(path+".provider", "%q does not name a provider", p.Provider)
		}
		if p.Model == "" {
			v.fail(path+".model", "is required")
		}
		if p.InputPerMTok < 0 || p.CachedInputPerMTok < 0 || p.OutputPerMTok < 0 {
			v.fail(path, "prices must not be negative")
		}
		if _, err := p.EffectiveTime(); err != nil {
			v.fail(path+".effective", "must be a date such as 2026-03-01, got %q", p.Effective)
		}
		k := p.Provider + "\x00" + p.Model + "\x00" + p.Effective
		if first, dup := seen[k]; dup {
			v.fail(path, "same provider, model and effective date as prices[%d]", first)
		}
		seen[k] = i
	}
}
