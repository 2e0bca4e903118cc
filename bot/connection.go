package bot

import (
	"context"
	"encoding/json"
	"time"

	"github.com/slack-go/slack/socketmode"
)

// reconnectWindow and reconnectWarnAt: this many reconnects within the
// window is no longer Slack's routine refresh (a few an hour) but a link
// that keeps failing, e.g. link_disabled or a revoked app token.
const (
	reconnectWindow = 10 * time.Minute
	reconnectWarnAt = 3
)

// noteReconnect logs a reconnect, as a warning when they repeat.
func (r *Runner) noteReconnect() {
	now := r.cfg.Now()
	r.mu.Lock()
	r.reconnects = append(r.reconnects, now)
	for len(r.reconnects) > 0 && now.Sub(r.reconnects[0]) > reconnectWindow {
		r.reconnects = r.reconnects[1:]
	}
	recent := len(r.reconnects)
	r.mu.Unlock()
	if recent >= reconnectWarnAt {
		r.log.Warn().Int("reconnects", recent).Dur("within", reconnectWindow).
			Msg("Slack keeps reconnecting; check that Socket Mode is enabled and SLACK_APP_TOKEN is valid")
		return
	}
	r.log.Info().Int64("connections", r.connects.Load()).Msg("reconnected to Slack")
}

// ackUndecodable acks an envelope slack-go could not decode, by the
// envelope_id read from its raw JSON; its content is not logged (it may
// hold user text).
func (r *Runner) ackUndecodable(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	bad, _ := evt.Data.(*socketmode.ErrorBadMessage)
	var env struct {
		EnvelopeID string `json:"envelope_id"`
		Type       string `json:"type"`
	}
	if bad == nil || json.Unmarshal(bad.Message, &env) != nil || env.EnvelopeID == "" {
		r.log.Warn().Msg("undecodable message from Slack without an envelope id; nothing to ack")
		return
	}
	if err := client.AckCtx(ctx, env.EnvelopeID, nil); err != nil {
		r.log.Error().Err(err).Str("envelope_id", env.EnvelopeID).Msg("ack of an undecodable envelope failed")
	}
	r.metrics.Command("undecodable", OutcomeError)
	r.log.Warn().Str("envelope_id", env.EnvelopeID).Str("type", env.Type).Str("cause", bad.Cause.Error()).
		Msg("acked an envelope slack-go could not decode; it was not handled")
}
