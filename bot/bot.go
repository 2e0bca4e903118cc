// Package bot is isolate-bot's Slack transport: it receives slash commands
// and button clicks over Socket Mode, acks every envelope at once, hands the
// work to a bounded worker pool calling commands.Service, and renders the
// service's cards and messages as Block Kit (see Renderer and Slack).
package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/soc/isolate-bot/commands"
)

// Service is what the Runner consumes: *commands.Service implements it.
type Service interface {
	Command(ctx context.Context, inv commands.Invocation) error
	Click(ctx context.Context, c commands.Click) error
}

// Deduper records deliveries; commands.Approvals implements it.
// FirstDelivery reports whether key is seen for the first time within ttl;
// an error means the store is unreachable.
type Deduper interface {
	FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Metrics receives the Runner's observations. Implementations must be safe
// for concurrent use and fast (they are called on the event loop).
type Metrics interface {
	// ObserveAck records the time from receiving an envelope to queueing its ack.
	ObserveAck(d time.Duration)
	// Reconnect counts a Socket Mode connection after the first one.
	Reconnect()
	// Command counts one handled delivery: name is the slash command or
	// "approve"/"deny"; outcome is one of the Outcome* constants.
	Command(name, outcome string)
}

// Outcomes passed to Metrics.Command.
const (
	OutcomeOK          = "ok"
	OutcomeError       = "error"
	OutcomeTimeout     = "timeout"
	OutcomeBusy        = "busy"
	OutcomeDuplicate   = "duplicate"
	OutcomeUnavailable = "store_unavailable"
)

// NopMetrics discards observations.
type NopMetrics struct{}

func (NopMetrics) ObserveAck(time.Duration) {}
func (NopMetrics) Reconnect()               {}
func (NopMetrics) Command(string, string)   {}

// Runner connects to Slack over Socket Mode and serves deliveries until its
// context ends.
type Runner struct {
	cfg     Config
	svc     Service
	api     *slack.Client
	dedup   Deduper
	msg     commands.Messenger
	metrics Metrics
	log     zerolog.Logger

	connected  atomic.Bool
	connects   atomic.Int64
	mu         sync.Mutex
	reconnects []time.Time // recent reconnect times, for noteReconnect
	jobs       chan job    // slash commands
	clicks     chan job    // button clicks: their own lane
	notices    chan notice
	running    atomic.Bool
}

// job is one delivery for a worker.
type job struct {
	name    string // metrics name: "/isolate", "approve", …
	keys    []string
	channel string
	user    string
	respURL string // the delivery's response_url, fallback for ephemerals
	run     func(ctx context.Context) error
}

// notice is an ephemeral message the Runner itself sends (busy, store down).
type notice struct {
	channel, user, respURL string
	text                   string
}

const (
	msgWorking     = "Working on it…"
	msgBusy        = "isolate-bot is busy right now; nothing was done. Please try again in a minute."
	msgUnavailable = "The state store is unavailable, so nothing was done. Please try again shortly."
	msgTimeout     = "That took too long and was stopped; check the request's thread or `/isolate status` before retrying."
)

// New returns a Runner. dedup is usually the commands.Approvals store; m
// may be nil (NopMetrics). api must carry the app-level token
// (slack.OptionAppLevelToken) for Socket Mode. It panics when cfg lacks a
// required value.
func New(cfg Config, svc Service, api *slack.Client, dedup Deduper, log zerolog.Logger, m Metrics) *Runner {
	cfg = cfg.checked()
	if m == nil {
		m = NopMetrics{}
	}
	return &Runner{
		cfg: cfg, svc: svc, api: api, dedup: dedup, metrics: m, log: log,
		msg:     NewSlack(api, log),
		jobs:    make(chan job, cfg.Queue),
		clicks:  make(chan job, cfg.ClickQueue),
		notices: make(chan notice, 64),
	}
}

// Config returns the Runner's configuration (with the clock set).
func (r *Runner) Config() Config { return r.cfg }

// Connected reports whether the Socket Mode connection is up (readiness).
func (r *Runner) Connected() bool { return r.connected.Load() }

// Run serves until ctx ends, then stops taking envelopes, waits up to
// DrainTimeout for queued and running work, and returns. It returns early
// with an error when Slack rejects the app token.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("bot: Runner.Run called twice")
	}
	var opts []socketmode.Option
	if r.cfg.PingInterval > 0 {
		opts = append(opts, socketmode.OptionPingInterval(r.cfg.PingInterval))
	}
	client := socketmode.New(r.api, opts...)

	// Work outlives ctx by up to DrainTimeout, so it runs on a context of
	// its own that is cancelled only when draining gives up.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var workers sync.WaitGroup
	for lane, n := range map[chan job]int{r.jobs: r.cfg.Workers, r.clicks: r.cfg.ClickWorkers} {
		for range n {
			workers.Go(func() {
				for j := range lane {
					r.handle(workCtx, j)
				}
			})
		}
	}
	var notifier sync.WaitGroup
	notifier.Go(func() {
		for n := range r.notices {
			nctx, cancel := context.WithTimeout(withResponseURL(workCtx, n.channel, n.user, n.respURL), 10*time.Second)
			if err := r.msg.Ephemeral(nctx, n.channel, n.user, commands.Message{Spans: []commands.Span{{Text: n.text}}}); err != nil {
				r.log.Warn().Err(err).Str("channel", n.channel).Str("user", n.user).Msg("notice not delivered")
			}
			cancel()
		}
	})

	sockCtx, stopSock := context.WithCancel(ctx)
	defer stopSock()
	sockErr := make(chan error, 1)
	go func() { sockErr <- client.RunContext(sockCtx) }()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-sockErr:
			// RunContext returns only on ctx end or a fatal error (bad token).
			if ctx.Err() == nil {
				runErr = fmt.Errorf("slack socket mode stopped (check SLACK_APP_TOKEN and SLACK_BOT_TOKEN): %w", err)
			}
			sockErr <- err
			break loop
		case evt := <-client.Events:
			r.dispatch(ctx, client, evt)
		}
	}
	r.connected.Store(false)
	stopSock()

	// Drain: no new jobs; wait for queued and running ones within the bound.
	close(r.jobs)
	close(r.clicks)
	done := make(chan struct{})
	go func() { workers.Wait(); close(r.notices); notifier.Wait(); close(done) }()
	t := time.NewTimer(r.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		stopWork()
		<-done // handlers observe workCtx and return promptly
		runErr = errors.Join(runErr, fmt.Errorf("bot: shutdown drain exceeded %s; unfinished deliveries were cancelled", r.cfg.DrainTimeout))
	}
	<-sockErr
	return runErr
}

// dispatch runs on the event loop: ack first, then queue the work without
// blocking.
func (r *Runner) dispatch(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		r.connected.Store(false)
		return
	case socketmode.EventTypeConnected:
		r.connected.Store(true)
		if r.connects.Add(1) > 1 {
			r.metrics.Reconnect()
			r.noteReconnect()
		} else {
			r.log.Info().Msg("connected to Slack")
		}
		return
	case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth:
		r.connected.Store(false)
		r.log.Warn().Str("event", string(evt.Type)).Interface("data", redactErr(evt.Data)).Msg("slack connection problem")
		return
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not decode the envelope, but Slack still waits
		// for its ack and redelivers it otherwise.
		r.ackUndecodable(ctx, client, evt)
		return
	}
	// slack-go handles Slack's "disconnect" request itself (it reconnects
	// and never emits the event), so there is no branch for it here.
	if evt.Request == nil || evt.Request.EnvelopeID == "" {
		if evt.Type == socketmode.EventTypeIncomingError {
			r.log.Warn().Str("event", string(evt.Type)).Msg("undecodable message from Slack")
		}
		return
	}
	received := r.cfg.Now()
	envID := evt.Request.EnvelopeID

	var payload any
	var j *job
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok {
			break
		}
		j = r.commandJob(cmd, envID)
		payload = map[string]any{"response_type": "ephemeral", "text": msgWorking}
		if !r.enqueue(r.jobs, *j) {
			payload = map[string]any{"response_type": "ephemeral", "text": msgBusy}
			j = nil
		}
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if ok && cb.Type == slack.InteractionTypeBlockActions {
			j = r.clickJob(cb, envID)
		}
	}

	if err := client.AckCtx(ctx, envID, payload); err != nil {
		r.log.Error().Err(err).Str("envelope_id", envID).Str("event", string(evt.Type)).Msg("ack failed")
	}
	r.metrics.ObserveAck(r.cfg.Now().Sub(received))

	if evt.Type == socketmode.EventTypeInteractive && j != nil && !r.enqueue(r.clicks, *j) {
		r.notify(*j, msgBusy)
	}
}

// enqueue hands j to lane without blocking; false when its queue is full.
func (r *Runner) enqueue(lane chan job, j job) bool {
	select {
	case lane <- j:
		return true
	default:
		r.metrics.Command(j.name, OutcomeBusy)
		r.log.Warn().Str("command", j.name).Str("user", j.user).Msg("worker queue full; delivery refused")
		return false
	}
}

func (r *Runner) notify(j job, text string) {
	select {
	case r.notices <- notice{channel: j.channel, user: j.user, respURL: j.respURL, text: text}:
	default:
		r.log.Warn().Str("user", j.user).Msg("notice queue full; notice dropped")
	}
}

func (r *Runner) commandJob(cmd slack.SlashCommand, envID string) *job {
	keys := []string{"env:" + envID}
	if cmd.TriggerID != "" {
		keys = append(keys, "trigger:"+cmd.TriggerID)
	}
	inv := commands.Invocation{Command: cmd.Command, Text: cmd.Text, User: cmd.UserID, Channel: cmd.ChannelID,
		TriggerID: cmd.TriggerID, DeliveryID: envID}
	return &job{name: cmd.Command, keys: keys, channel: cmd.ChannelID, user: cmd.UserID, respURL: cmd.ResponseURL,
		run: func(ctx context.Context) error { return r.svc.Command(ctx, inv) }}
}

// clickActions maps the card's action ids to the button pressed.
var clickActions = map[string]commands.Button{
	ActionApprove: commands.ButtonApprove,
	ActionDeny:    commands.ButtonDeny,
	ActionCancel:  commands.ButtonCancel,
	ActionRelease: commands.ButtonRelease,
	ActionStop:    commands.ButtonStop,
}

// clickJob turns the first known card button of a block_actions payload
// into a job; unknown action ids are ignored (nil).
func (r *Runner) clickJob(cb slack.InteractionCallback, envID string) *job {
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil {
			continue
		}
		kind, known := clickActions[a.ActionID]
		if !known {
			r.log.Info().Str("action_id", a.ActionID).Str("block_id", a.BlockID).Msg("ignoring unknown action")
			continue
		}
		id := unesc(a.Value)
		if id == "" {
			id = unesc(strings.TrimPrefix(a.BlockID, BlockIDPrefix))
		}
		channel := cb.Channel.ID
		if channel == "" {
			channel = cb.Container.ChannelID
		}
		ts := cb.Container.MessageTs
		if ts == "" {
			ts = cb.Message.Timestamp
		}
		c := commands.Click{RequestID: id, User: cb.User.ID, Channel: channel, MessageTS: ts, Action: kind,
			TriggerID: cb.TriggerID}
		return &job{name: string(kind), keys: []string{"env:" + envID}, channel: channel, user: cb.User.ID, respURL: cb.ResponseURL,
			run: func(ctx context.Context) error { return r.svc.Click(ctx, c) }}
	}
	return nil
}

// handle runs one job on a worker: de-duplicate (fail closed), then call
// the service within the per-delivery timeout.
func (r *Runner) handle(workCtx context.Context, j job) {
	ctx, cancel := context.WithTimeout(workCtx, r.cfg.CommandTimeout)
	defer cancel()
	log := r.log.With().Str("command", j.name).Str("user", j.user).Str("channel", j.channel).Str("delivery", j.keys[0]).Logger()
	ctx = withResponseURL(log.WithContext(ctx), j.channel, j.user, j.respURL)

	for _, k := range j.keys {
		first, err := r.dedup.FirstDelivery(ctx, k, r.cfg.DedupTTL)
		if err != nil {
			log.Error().Err(err).Msg("delivery de-duplication failed; refusing the delivery")
			r.metrics.Command(j.name, OutcomeUnavailable)
			r.notify(j, msgUnavailable)
			return
		}
		if !first {
			log.Info().Str("key", k).Msg("duplicate delivery ignored")
			r.metrics.Command(j.name, OutcomeDuplicate)
			return
		}
	}
	err := j.run(ctx)
	switch {
	case err == nil:
		r.metrics.Command(j.name, OutcomeOK)
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		log.Error().Err(err).Dur("timeout", r.cfg.CommandTimeout).Msg("delivery timed out")
		r.metrics.Command(j.name, OutcomeTimeout)
		r.notify(j, msgTimeout)
	default:
		log.Error().Err(err).Msg("delivery failed")
		r.metrics.Command(j.name, OutcomeError)
	}
}

// redactErr keeps only the error text of connection events (never the
// request or token).
func redactErr(d any) any {
	switch x := d.(type) {
	case *slack.ConnectionErrorEvent:
		if x.ErrorObj != nil {
			return map[string]any{"attempt": x.Attempt, "backoff": x.Backoff.String(), "error": x.ErrorObj.Error()}
		}
		return map[string]any{"attempt": x.Attempt}
	case error:
		return x.Error()
	}
	return nil
}
