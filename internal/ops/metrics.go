package ops

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/soc/isolate-bot/defender"
)

// Label values. Every label of every family takes its values from a small
// fixed vocabulary (or a bounded set, see boundedLabel): never a user id,
// machine id, host name, request id or free text.
const (
	OutcomeApproved  = "approved"
	OutcomeDenied    = "denied"
	OutcomeExpired   = "expired"
	OutcomeCancelled = "cancelled"
	OutcomeConflict  = "conflict"
	OutcomeRefused   = "refused"

	ResultAdmitted = "admitted"
	ResultRefused  = "refused"
	ResultQueued   = "queued"
	ResultError    = "error"

	// MDE operation label values, one per commands.Defender method.
	OpIsolate        = "isolate"
	OpUnisolate      = "unisolate"
	OpMachineAction  = "machine_action"
	OpMachine        = "machine"
	OpFindMachines   = "find_machines"
	OpCancel         = "cancel"
	OpMachineActions = "machine_actions"
	// Batched reads: one count per method call (each may make several
	// HTTP requests, one per URL-bounded chunk).
	OpActionsByID        = "actions_by_id"
	OpResolveMachines    = "resolve_machines"
	OpMachinesByTag      = "machines_by_tag"
	OpActionsForMachines = "actions_for_machines"
	OpActionsSince       = "actions_since"

	// CodeOK, CodeToken and CodeError are the code label of an MDE call
	// that succeeded, that never started because Azure AD gave no token
	// (its status is Azure AD's, not MDE's), or that failed without an
	// HTTP response (network, timeout).
	CodeOK    = "ok"
	CodeToken = "token"
	CodeError = "error"

	// Other replaces a label value outside the known or bounded vocabulary.
	Other = "other"
)

var (
	decisionOutcomes = []string{OutcomeApproved, OutcomeDenied, OutcomeExpired, OutcomeCancelled, OutcomeConflict, OutcomeRefused}
	limiterResults   = []string{ResultAdmitted, ResultRefused, ResultQueued, ResultError}
	mdeOperations    = []string{OpIsolate, OpUnisolate, OpMachineAction, OpMachine, OpFindMachines, OpCancel, OpMachineActions,
		OpActionsByID, OpResolveMachines, OpMachinesByTag, OpActionsForMachines, OpActionsSince}
	budgets = []string{defender.BudgetIsolate, defender.BudgetUnisolate, defender.BudgetMachineActions, defender.BudgetMachines, defender.BudgetCancel}
)

// AckBuckets suit Socket Mode acks: normally a few milliseconds, and Slack
// gives up at 3 s, so the top finite bucket is 3 s.
var AckBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3}

// Reporter is what a chat transport reports through. *Metrics implements it;
// a nil *Metrics is a valid no-op Reporter.
type Reporter interface {
	ObserveAck(d time.Duration)
	Reconnect()
	Command(name, outcome string)
}

var _ Reporter = (*Metrics)(nil)

// MetricsOptions configures NewMetrics. The zero value is usable.
type MetricsOptions struct {
	// PendingRequests counts pending approval requests across all replicas
	// (from the shared store). Called on every scrape with a 2 s timeout;
	// on error the sample is left out of that scrape (alert on absent()).
	// nil: isolatebot_pending_requests is not exported.
	PendingRequests func(ctx context.Context) (int, error)
	// Now is the clock for queued-vs-admitted decisions and queue depth;
	// nil means time.Now.
	Now func() time.Time
}

// Metrics are isolate-bot's Prometheus metrics. Create with NewMetrics; all
// methods are safe for concurrent use and no-ops on a nil *Metrics.
type Metrics struct {
	now        func() time.Time
	commands   *prometheus.CounterVec
	decisions  *prometheus.CounterVec
	mdeCalls   *prometheus.CounterVec
	limiter    *prometheus.CounterVec
	ackLatency prometheus.Histogram
	reconnects prometheus.Counter
	queue      *queueTracker

	cmdNames    *boundedLabel
	cmdOutcomes *boundedLabel
}

// NewMetrics creates the metrics and registers them on reg (never the
// global registry, so tests and several instances don't collide).
func NewMetrics(reg prometheus.Registerer, opts MetricsOptions) (*Metrics, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m := &Metrics{
		now: now,
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isolatebot_commands_total",
			Help: "Slash commands and button clicks handled, by command and outcome.",
		}, []string{"command", "outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isolatebot_decisions_total",
			Help: "Approval decisions: approved, denied, expired, cancelled; conflict = lost a race or already decided; refused = click refused (not an approver, own request).",
		}, []string{"outcome"}),
		mdeCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isolatebot_mde_calls_total",
			Help: "MDE API calls by operation and HTTP status (ok = success, error = no HTTP response).",
		}, []string{"operation", "code"}),
		limiter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isolatebot_limiter_decisions_total",
			Help: "Rate limiter answers by MDE budget: admitted now, queued for a later slot, refused, or error (store down; no MDE call made).",
		}, []string{"budget", "result"}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "isolatebot_ack_latency_seconds",
			Help:    "Time from receiving a Socket Mode envelope to acking it (Slack gives up after 3 s).",
			Buckets: AckBuckets,
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isolatebot_slack_reconnects_total",
			Help: "Socket Mode connection attempts after the first (reconnects).",
		}),
		queue:       newQueueTracker(),
		cmdNames:    newBoundedLabel(16),
		cmdOutcomes: newBoundedLabel(16),
	}
	// Zero-initialise the fixed vocabularies so rate() and absent() work
	// from the first scrape, before anything has happened.
	for _, o := range decisionOutcomes {
		m.decisions.WithLabelValues(o)
	}
	for _, b := range budgets {
		for _, r := range limiterResults {
			m.limiter.WithLabelValues(b, r)
		}
	}
	for _, op := range mdeOperations {
		m.mdeCalls.WithLabelValues(op, CodeOK)
	}
	cs := []prometheus.Collector{m.commands, m.decisions, m.mdeCalls, m.limiter, m.ackLatency, m.reconnects,
		&queueCollector{m: m, desc: prometheus.NewDesc("isolatebot_limiter_queue_depth",
			"Calls this replica holds a future limiter slot for (queued behind the MDE rate limit), by budget.",
			[]string{"budget"}, nil)}}
	if opts.PendingRequests != nil {
		cs = append(cs, &pendingCollector{f: opts.PendingRequests, desc: prometheus.NewDesc("isolatebot_pending_requests",
			"Approval requests waiting for a decision, across all replicas.", nil, nil)})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register isolate-bot metrics: %w", err)
		}
	}
	return m, nil
}

// ObserveAck records how long an envelope took to ack.
func (m *Metrics) ObserveAck(d time.Duration) {
	if m == nil {
		return
	}
	m.ackLatency.Observe(d.Seconds())
}

// Reconnect counts one Socket Mode reconnect.
func (m *Metrics) Reconnect() {
	if m == nil {
		return
	}
	m.reconnects.Inc()
}

// Command counts one handled delivery. name and outcome must come from a
// small fixed vocabulary (the transport's: "/isolate", "approve"; "ok",
// "busy", "timeout", …); a leading "/" is dropped, and values that are not
// short lower-case words, or that come after the first 16 distinct ones,
// are counted as "other", so user input can never explode the label set.
func (m *Metrics) Command(name, outcome string) {
	if m == nil {
		return
	}
	m.commands.WithLabelValues(m.cmdNames.value(strings.TrimPrefix(name, "/")), m.cmdOutcomes.value(outcome)).Inc()
}

// Decision counts one approval decision outcome (Outcome* constants).
// InstrumentApprovals calls it for every decision, and with OutcomeRefused
// for every refused click (from its store.EventClickRefused audit event).
func (m *Metrics) Decision(outcome string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(oneOf(outcome, decisionOutcomes)).Inc()
}

func (m *Metrics) mdeCall(op string, code string) {
	m.mdeCalls.WithLabelValues(op, code).Inc()
}

func (m *Metrics) limiterResult(budget, result string) {
	m.limiter.WithLabelValues(budgetLabel(budget), result).Inc()
}

func budgetLabel(b string) string { return oneOf(b, budgets) }

func oneOf(v string, allowed []string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return Other
}

// boundedLabel admits at most max distinct well-formed values; the rest
// become "other". It guards labels whose vocabulary belongs to another
// package (the transport's command and outcome names).
type boundedLabel struct {
	mu   sync.Mutex
	seen map[string]struct{}
	max  int
}

var reLabelWord = regexp.MustCompile(`^[a-z][a-z0-9_]{0,23}$`)

func newBoundedLabel(max int) *boundedLabel {
	return &boundedLabel{seen: map[string]struct{}{}, max: max}
}

func (b *boundedLabel) value(v string) string {
	if !reLabelWord.MatchString(v) {
		return Other
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return Other
	}
	b.seen[v] = struct{}{}
	return v
}

// queueTracker remembers this replica's reservations of future limiter
// slots until their time comes or they are released.
type queueTracker struct {
	mu    sync.Mutex
	slots map[slotKey]int
}

type slotKey struct {
	budget string
	token  string
	at     time.Time
}

func newQueueTracker() *queueTracker { return &queueTracker{slots: map[slotKey]int{}} }

func keyOf(budget string, at time.Time, token string) slotKey {
	return slotKey{budget: budgetLabel(budget), token: token, at: at.UTC()}
}

func (q *queueTracker) add(k slotKey) {
	q.mu.Lock()
	q.slots[k]++
	q.mu.Unlock()
}

func (q *queueTracker) remove(k slotKey) {
	q.mu.Lock()
	if n := q.slots[k]; n <= 1 {
		delete(q.slots, k)
	} else {
		q.slots[k] = n - 1
	}
	q.mu.Unlock()
}

// depth counts reservations still in the future, per budget, and forgets
// those whose time has come (the caller has sent its call by then).
func (q *queueTracker) depth(now time.Time) map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := map[string]int{}
	for k, n := range q.slots {
		if !k.at.After(now) {
			delete(q.slots, k)
			continue
		}
		d[k.budget] += n
	}
	return d
}

type queueCollector struct {
	m    *Metrics
	desc *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.m.queue.depth(c.m.now())
	for _, b := range budgets {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(d[b]), b)
	}
	if n, ok := d[Other]; ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), Other)
	}
}

type pendingCollector struct {
	f    func(ctx context.Context) (int, error)
	desc *prometheus.Desc
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.f(ctx)
	if err != nil {
		return // unknown: leave the sample out rather than report a wrong 0
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}
