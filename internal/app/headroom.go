package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/logging"
)

// startSharing shares what this replica sees of providers' rate limits
// and 429s with every other replica through the store, and reads theirs
// back, every store.headroom_interval until veil stops (ADR 0028). A
// failing store is logged once a minute; the view read last stays in
// force meanwhile.
func (a *App) startSharing() {
	quiet := logging.NewLimiter(a.log, logging.LimiterOptions{Every: time.Minute})
	sh := &health.Sharing{Registry: a.health, Store: a.store, Interval: a.cfg.Store.HeadroomInterval,
		Timeout: a.cfg.Store.Timeout, OnError: func(err error) {
			quiet.Warn("headroom sharing failed", "providers' headroom could not be shared through the store", zap.Error(err))
		}}
	ctx, cancel := context.WithCancel(context.Background())
	a.sharing.Add(1)
	go func() {
		defer a.sharing.Done()
		sh.Run(ctx)
	}()
	go func() {
		<-a.stopWatch
		cancel()
	}()
}

// explainInputs are the plan's inputs as the proxy gives them, for
// /admin/explain: breakers and load from the health registry, and where
// suppliers' own keys are held.
func (a *App) explainInputs() admin.ExplainInputs {
	in := admin.ExplainInputs{Health: a.health, Load: a.health}
	if a.keys != nil {
		in.Keys = a.keys
	}
	return in
}
