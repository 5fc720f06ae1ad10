package usage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/webhook"
)

var (
	_ Sink       = (*webhookSink)(nil)
	_ Overflower = (*webhookSink)(nil)
)

// Webhook defaults.
const (
	DefaultWebhookTimeout        = 10 * time.Second
	DefaultWebhookResendInterval = 5 * time.Second
)

// WebhookOptions configure NewWebhookSink.
type WebhookOptions struct {
	// URL is where batches are POSTed: http or https.
	URL string
	// Headers are added to every POST, e.g. Authorization. Their values
	// are never logged.
	Headers map[string]string
	// Timeout bounds one POST; default 10s.
	Timeout time.Duration
	// SpillDir is where records that could not be delivered wait to be
	// re-sent; required, created with mode 0700. One sink per directory.
	SpillDir string
	// ResendInterval is how often spilled records are re-sent; default
	// 5s. After failures the wait doubles, up to a minute.
	ResendInterval time.Duration
	// Client sends the POSTs; nil means a client of veil's own. Redirects
	// that would turn the POST into a GET are not followed.
	Client *http.Client
	// Log receives resend and spill errors; nil means none.
	Log *zap.Logger
}

// StatusError is a webhook answer other than 2xx.
type StatusError = webhook.StatusError

// webhookTuning holds what tests shrink.
type webhookTuning struct {
	rollRecords   int   // records per spill file
	rollBytes     int64 // bytes per spill file
	resendRecords int   // records per re-sent POST
	resendBytes   int   // uncompressed bytes per re-sent POST
}

var defaultWebhookTuning = webhookTuning{
	rollRecords:   10000,
	rollBytes:     16 << 20,
	resendRecords: DefaultBatchSize,
	resendBytes:   1 << 20,
}

type webhookSink struct {
	hook     *webhook.Poster
	log      *zap.Logger
	interval time.Duration
	maxWait  time.Duration
	tune     webhookTuning

	spill *spill

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	spillWarn  limiter
	resendWarn limiter
}

// NewWebhookSink returns a sink POSTing batches as gzip-compressed NDJSON.
// A 2xx answer delivers a batch; 408, 429, 5xx and network errors are
// errors to retry; other answers are permanent errors (ErrPermanent), which
// the emitter does not retry. Either way a batch that could not be
// delivered is overflowed: the sink spills it to a file in SpillDir, and a
// background resender, stopped by Close, POSTs the spilled files, oldest
// first, deleting each once all its records are delivered. Files left by a
// previous run are re-sent too.
//
// Delivery is at least once: a batch is spilled or re-sent only when no 2xx
// was seen for it, and the progress through a spilled file is saved after
// each 2xx, so a record is sent twice only when a POST's answer is lost (a
// timeout, a crash mid-POST).
func NewWebhookSink(o WebhookOptions) (Sink, error) {
	return newWebhookSink(o, defaultWebhookTuning)
}

func newWebhookSink(o WebhookOptions, tune webhookTuning) (*webhookSink, error) {
	hook, err := webhook.New(webhook.Options{Name: "usage webhook", URL: o.URL, Headers: o.Headers,
		ContentType: "application/x-ndjson", ContentEncoding: "gzip",
		Timeout: positive(o.Timeout, DefaultWebhookTimeout), Client: o.Client})
	if err != nil {
		return nil, err
	}
	if o.SpillDir == "" {
		return nil, errors.New("usage webhook: a spill dir is required")
	}
	s := &webhookSink{
		hook:     hook,
		log:      o.Log,
		interval: positive(o.ResendInterval, DefaultWebhookResendInterval),
		tune:     tune,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.maxWait = max(s.interval, min(32*s.interval, time.Minute))
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.spill, err = openSpill(o.SpillDir, tune.rollRecords, tune.rollBytes); err != nil {
		return nil, fmt.Errorf("usage webhook: %w", err)
	}
	go s.resendLoop()
	return s, nil
}

// Name returns "webhook".
func (s *webhookSink) Name() string { return "webhook" }

// Write POSTs batch.
func (s *webhookSink) Write(batch []*Record) error {
	if len(batch) == 0 {
		return nil
	}
	body, err := gzipBody(func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range batch {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("%w: encode usage record: %w", ErrPermanent, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.post(body)
}

// Overflow spills r to disk, to be re-sent. A record that cannot be
// written is logged as lost.
func (s *webhookSink) Overflow(r *Record) {
	if err := s.spill.add(r); err != nil && s.spillWarn.allow(time.Now()) {
		s.log.Error("usage webhook: spilling a record failed, it is lost",
			zap.String("request_id", r.RequestID), zap.Error(err))
	}
}

// Close stops the resender, letting a POST in progress end, and closes the
// spill file being written. It is idempotent.
func (s *webhookSink) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = s.spill.close()
		s.spill.release()
		s.hook.Close()
	})
	return s.closeErr
}

var gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// gzipBody returns what write writes, gzip-compressed.
func gzipBody(write func(io.Writer) error) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzipPool.Get().(*gzip.Writer)
	defer gzipPool.Put(zw)
	zw.Reset(&buf)
	err := write(zw)
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("compress usage batch: %w", cerr)
	}
	zw.Reset(io.Discard)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// post sends one gzip-compressed NDJSON body; a failure that trying
// again would not mend wraps ErrPermanent. The body is not reused after
// post returns: the transport may still hold it.
func (s *webhookSink) post(body []byte) error {
	err := s.hook.Post(context.Background(), body)
	if err != nil && webhook.Permanent(err) {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return err
}

// resendLoop re-sends spilled files every interval until Close, waiting
// longer after failures.
func (s *webhookSink) resendLoop() {
	defer close(s.done)
	wait := s.interval
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.resendAll(); err != nil {
			if s.resendWarn.allow(time.Now()) {
				s.log.Warn("usage webhook: re-sending spilled records failed, will retry", zap.Error(err))
			}
			wait = min(2*wait, s.maxWait)
		} else {
			wait = s.interval
		}
		t.Reset(wait)
	}
}

func (s *webhookSink) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// resendAll re-sends closed spill files, oldest first, closing the file
// being written when no other is left.
func (s *webhookSink) resendAll() error {
	for !s.stopped() {
		p, err := s.spill.oldest()
		if err != nil {
			return err
		}
		if p == "" {
			rotated, err := s.spill.rotate()
			if err != nil {
				return err
			}
			if !rotated {
				return nil
			}
			continue
		}
		if err := s.resendFile(p); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(p), err)
		}
	}
	return nil
}

// resendFile POSTs the records of the spill file at p from where the last
// delivery stopped, saving the progress after each 2xx, and removes the
// file when all are delivered. Lines that are not JSON (a crash cut them)
// are skipped.
func (s *webhookSink) resendFile(p string) error {
	off, err := readOffset(p)
	if err != nil {
		s.log.Error("usage webhook: re-sending the whole spill file", zap.Error(err))
		off = 0
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("open spill file: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("seek spill file: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var (
		lines   [][]byte
		size    int
		pos     = off
		invalid int
		sent    int
	)
	for {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("read spill file: %w", rerr)
		}
		pos += int64(len(line))
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if json.Valid(line) {
				lines = append(lines, line)
				size += len(line) + 1
			} else {
				invalid++
			}
		}
		eof := rerr == io.EOF
		if len(lines) > 0 && (eof || len(lines) >= s.tune.resendRecords || size >= s.tune.resendBytes) {
			if s.stopped() {
				return nil
			}
			if err := s.postLines(lines); err != nil {
				return err
			}
			sent += len(lines)
			lines, size = lines[:0], 0
			if err := writeOffset(p, pos); err != nil {
				return err
			}
		}
		if eof {
			break
		}
	}
	if invalid > 0 {
		s.log.Error("usage webhook: skipped corrupt lines of a spill file",
			zap.String("file", filepath.Base(p)), zap.Int("lines", invalid))
	}
	_ = f.Close() // before removing it, which some systems require
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove delivered spill file: %w", err)
	}
	if err := os.Remove(p + offsetExt); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spill offset: %w", err)
	}
	s.log.Info("usage webhook: re-sent spilled records",
		zap.String("file", filepath.Base(p)), zap.Int("records", sent))
	return nil
}

func (s *webhookSink) postLines(lines [][]byte) error {
	body, err := gzipBody(func(w io.Writer) error {
		for _, l := range lines {
			if _, err := w.Write(l); err != nil {
				return err
			}
			if _, err := w.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.post(body)
}
