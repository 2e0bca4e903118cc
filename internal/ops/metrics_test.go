package ops

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/ratelimit"
	"github.com/soc/isolate-bot/internal/testclock"
	"github.com/soc/isolate-bot/store"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func newMetrics(t *testing.T, opts MetricsOptions) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// fakeDefender answers every call with err and a recognisable value.
type fakeDefender struct{ err error }

var _ commands.Defender = fakeDefender{}

func (f fakeDefender) Isolate(context.Context, defender.Slot, string, defender.IsolationType, string) (defender.MachineAction, error) {
	return defender.MachineAction{ID: "a-isolate"}, f.err
}
func (f fakeDefender) Unisolate(context.Context, defender.Slot, string, string) (defender.MachineAction, error) {
	return defender.MachineAction{ID: "a-unisolate"}, f.err
}
func (f fakeDefender) MachineAction(context.Context, string) (defender.MachineAction, error) {
	return defender.MachineAction{ID: "a-get"}, f.err
}
func (f fakeDefender) Machine(context.Context, string) (defender.Machine, error) {
	return defender.Machine{ID: "m-get"}, f.err
}
func (f fakeDefender) FindMachinesByName(context.Context, string) ([]defender.Machine, error) {
	return []defender.Machine{{ID: "m-find"}}, f.err
}
func (f fakeDefender) CancelMachineAction(context.Context, defender.Slot, string, string) (defender.MachineAction, error) {
	return defender.MachineAction{ID: "a-cancel"}, f.err
}
func (f fakeDefender) MachineActions(context.Context, string) ([]defender.MachineAction, error) {
	return []defender.MachineAction{{ID: "a-list"}}, f.err
}

func (f fakeDefender) MachineActionsByID(context.Context, []string) ([]defender.MachineAction, error) {
	return []defender.MachineAction{{ID: "a-by-id"}}, f.err
}

func (f fakeDefender) ResolveMachines(context.Context, []string) ([]defender.Resolution, error) {
	return []defender.Resolution{{Ref: "r-resolve"}}, f.err
}

func (f fakeDefender) MachinesByTag(context.Context, string) ([]defender.Machine, error) {
	return []defender.Machine{{ID: "m-tag"}}, f.err
}

func (f fakeDefender) ActionsForMachines(context.Context, []string, int) ([]defender.MachineAction, error) {
	return []defender.MachineAction{{ID: "a-for"}}, f.err
}

func (f fakeDefender) ActionsSince(context.Context, string, time.Time) ([]defender.MachineAction, error) {
	return []defender.MachineAction{{ID: "a-since"}}, f.err
}

func TestInstrumentDefender(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"success", nil, "ok"},
		{"not found", &defender.APIError{Op: "get machine", Status: 404, Kind: defender.ErrNotFound}, "404"},
		{"wrapped throttled", fmt.Errorf("isolate: %w", &defender.APIError{Status: 429, Kind: defender.ErrThrottled}), "429"},
		{"no response", &defender.APIError{Op: "isolate", Status: 0, Kind: defender.ErrOutcomeUnknown}, "error"},
		{"not an API error", context.DeadlineExceeded, "error"},
		// Azure AD's 401 is not MDE's: an alert on MDE 401s must not fire.
		{"token refused", fmt.Errorf("isolate: %w", &defender.APIError{Op: defender.OpToken, Status: 401, Kind: defender.ErrUnauthorized}), "token"},
		{"token endpoint down", &defender.APIError{Op: defender.OpToken, Status: 503, Kind: defender.ErrUnavailable}, "token"},
	}
	const id = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newMetrics(t, MetricsOptions{})
			d := InstrumentDefender(fakeDefender{err: tt.err}, m)
			ctx := context.Background()
			type call struct {
				op   string
				run  func() (string, error)
				want string
			}
			calls := []call{
				{OpIsolate, func() (string, error) { a, err := d.Isolate(ctx, nil, id, defender.Full, "c"); return a.ID, err }, "a-isolate"},
				{OpUnisolate, func() (string, error) { a, err := d.Unisolate(ctx, nil, id, "c"); return a.ID, err }, "a-unisolate"},
				{OpMachineAction, func() (string, error) { a, err := d.MachineAction(ctx, "x"); return a.ID, err }, "a-get"},
				{OpMachine, func() (string, error) { a, err := d.Machine(ctx, id); return a.ID, err }, "m-get"},
				{OpFindMachines, func() (string, error) { a, err := d.FindMachinesByName(ctx, "h"); return a[0].ID, err }, "m-find"},
				{OpCancel, func() (string, error) { a, err := d.CancelMachineAction(ctx, nil, "x", "c"); return a.ID, err }, "a-cancel"},
				{OpMachineActions, func() (string, error) { a, err := d.MachineActions(ctx, id); return a[0].ID, err }, "a-list"},
				{OpActionsByID, func() (string, error) { a, err := d.MachineActionsByID(ctx, []string{"x"}); return a[0].ID, err }, "a-by-id"},
				{OpResolveMachines, func() (string, error) { a, err := d.ResolveMachines(ctx, []string{"h"}); return a[0].Ref, err }, "r-resolve"},
				{OpMachinesByTag, func() (string, error) { a, err := d.MachinesByTag(ctx, "t"); return a[0].ID, err }, "m-tag"},
				{OpActionsForMachines, func() (string, error) { a, err := d.ActionsForMachines(ctx, []string{id}, 5); return a[0].ID, err }, "a-for"},
				{OpActionsSince, func() (string, error) { a, err := d.ActionsSince(ctx, "Isolate", t0); return a[0].ID, err }, "a-since"},
			}
			for i, c := range calls {
				got, err := c.run()
				if got != c.want || !errors.Is(err, tt.err) {
					t.Errorf("%s returned (%q, %v), want (%q, %v) unchanged", c.op, got, err, c.want, tt.err)
				}
				// Called i+1 times in all; this op once, with this code.
				if n := testutil.ToFloat64(m.mdeCalls.WithLabelValues(c.op, tt.code)); n != 1 {
					t.Errorf("mde_calls{operation=%q,code=%q} = %v, want 1", c.op, tt.code, n)
				}
				if n := sumCounter(t, m.mdeCalls); n != float64(i+1) {
					t.Errorf("mde_calls total after %d calls = %v", i+1, n)
				}
			}
		})
	}
}

// checkDecision checks that m counted exactly one decision, outcome, or
// none when outcome is empty.
func checkDecision(t *testing.T, m *Metrics, outcome string) {
	t.Helper()
	var want float64
	if outcome != "" {
		want = 1
		if n := testutil.ToFloat64(m.decisions.WithLabelValues(outcome)); n != 1 {
			t.Errorf("decisions{outcome=%q} = %v, want 1", outcome, n)
		}
	}
	if n := sumCounter(t, m.decisions); n != want {
		t.Errorf("decisions sum = %v, want %v", n, want)
	}
}

func sumCounter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		pb := &dto.Metric{}
		if err := m.Write(pb); err != nil {
			t.Fatal(err)
		}
		sum += pb.Counter.GetValue()
	}
	return sum
}

// fakeLimiter returns the next decision or error it was given.
type fakeLimiter struct {
	mu       sync.Mutex
	d        ratelimit.Decision
	err      error
	released []ratelimit.Decision
	blocked  []time.Time
}

func (f *fakeLimiter) Limits() ratelimit.Limits {
	return ratelimit.Limits{PerMinute: 1, PerHour: 1, Minute: time.Minute, Hour: time.Hour}
}

func (f *fakeLimiter) Reserve(context.Context, string, time.Duration) (ratelimit.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d, f.err
}
func (f *fakeLimiter) Release(_ context.Context, _ string, d ratelimit.Decision) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, d)
	return nil
}
func (f *fakeLimiter) Block(_ context.Context, _ string, until time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = append(f.blocked, until)
	return nil
}

func TestInstrumentLimiter(t *testing.T) {
	storeDown := fmt.Errorf("reserve: %w", ratelimit.ErrUnavailable)
	tests := []struct {
		name   string
		budget string
		d      ratelimit.Decision
		err    error
		result string
		queued int
	}{
		{"admitted now", defender.BudgetIsolate, ratelimit.Decision{Allowed: true, At: t0, Token: "t1"}, nil, ResultAdmitted, 0},
		{"admitted in the past", defender.BudgetMachines, ratelimit.Decision{Allowed: true, At: t0.Add(-time.Millisecond), Token: "t1"}, nil, ResultAdmitted, 0},
		{"queued", defender.BudgetIsolate, ratelimit.Decision{Allowed: true, At: t0.Add(5 * time.Second), Token: "t2"}, nil, ResultQueued, 1},
		{"refused", defender.BudgetUnisolate, ratelimit.Decision{Allowed: false, At: t0.Add(30 * time.Second)}, nil, ResultRefused, 0},
		{"store error", defender.BudgetCancel, ratelimit.Decision{}, storeDown, ResultError, 0},
		{"unknown budget", "not-a-budget", ratelimit.Decision{Allowed: true, At: t0}, nil, ResultAdmitted, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testclock.New(t0)
			m, _ := newMetrics(t, MetricsOptions{Now: clk.Now})
			fl := &fakeLimiter{d: tt.d, err: tt.err}
			l := InstrumentLimiter(fl, m)
			d, err := l.Reserve(context.Background(), tt.budget, time.Minute)
			if d != tt.d || !errors.Is(err, tt.err) {
				t.Fatalf("Reserve = (%+v, %v), want (%+v, %v) unchanged", d, err, tt.d, tt.err)
			}
			label := budgetLabel(tt.budget)
			if n := testutil.ToFloat64(m.limiter.WithLabelValues(label, tt.result)); n != 1 {
				t.Errorf("limiter_decisions{budget=%q,result=%q} = %v, want 1", label, tt.result, n)
			}
			if n := sumCounter(t, m.limiter); n != 1 {
				t.Errorf("limiter_decisions sum = %v, want 1", n)
			}
			if got := m.queue.depth(clk.Now())[label]; got != tt.queued {
				t.Errorf("queue depth = %d, want %d", got, tt.queued)
			}
		})
	}
}

func TestLimiterQueueDepth(t *testing.T) {
	clk := testclock.New(t0)
	m, reg := newMetrics(t, MetricsOptions{Now: clk.Now})
	fl := &fakeLimiter{}
	l := InstrumentLimiter(fl, m)
	ctx := context.Background()
	var ds []ratelimit.Decision
	for i := 1; i <= 3; i++ {
		fl.d = ratelimit.Decision{Allowed: true, At: t0.Add(time.Duration(i) * time.Second), Token: fmt.Sprint("tok", i)}
		d, _ := l.Reserve(ctx, defender.BudgetIsolate, time.Minute)
		ds = append(ds, d)
	}
	// Two reservations without tokens at the same instant count twice.
	fl.d = ratelimit.Decision{Allowed: true, At: t0.Add(10 * time.Second)}
	l.Reserve(ctx, defender.BudgetMachines, time.Minute)
	l.Reserve(ctx, defender.BudgetMachines, time.Minute)

	depth := func(budget string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "isolatebot_limiter_queue_depth" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				if mt.GetLabel()[0].GetValue() == budget {
					return mt.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no queue depth sample for %q", budget)
		return 0
	}
	steps := []struct {
		name                  string
		do                    func()
		isolate, machines, rl float64
	}{
		{"after reserving", func() {}, 3, 2, 0},
		{"release one", func() { l.Release(ctx, defender.BudgetIsolate, ds[2]) }, 2, 2, 0},
		{"release unknown is harmless", func() { l.Release(ctx, defender.BudgetIsolate, ratelimit.Decision{Token: "nope"}) }, 2, 2, 0},
		{"first slot time comes", func() { clk.Advance(time.Second) }, 1, 2, 0},
		{"release one of two tokenless", func() { l.Release(ctx, defender.BudgetMachines, fl.d) }, 1, 1, 0},
		{"all slots due", func() { clk.Advance(time.Minute) }, 0, 0, 0},
	}
	for _, s := range steps {
		s.do()
		if got := depth(defender.BudgetIsolate); got != s.isolate {
			t.Errorf("%s: isolate depth = %v, want %v", s.name, got, s.isolate)
		}
		if got := depth(defender.BudgetMachines); got != s.machines {
			t.Errorf("%s: machines depth = %v, want %v", s.name, got, s.machines)
		}
		if got := depth(defender.BudgetUnisolate); got != s.rl {
			t.Errorf("%s: unisolate depth = %v, want 0", s.name, got)
		}
	}
	if len(fl.released) != 3 {
		t.Errorf("Release reached the limiter %d times, want 3", len(fl.released))
	}
	until := t0.Add(time.Hour)
	if err := l.Block(ctx, defender.BudgetIsolate, until); err != nil || len(fl.blocked) != 1 || !fl.blocked[0].Equal(until) {
		t.Errorf("Block did not pass through: %v %v", err, fl.blocked)
	}
}

// fakeApprovals answers Transition with the configured error; the rest
// is provided by the embedded nil interface and must not be called.
type fakeApprovals struct {
	commands.Approvals
	err      error
	appended []store.Event
}

func (f *fakeApprovals) Transition(_ context.Context, id string, from store.State, ch store.Change) (store.Request, error) {
	return store.Request{ID: id, State: ch.To}, f.err
}
func (f *fakeApprovals) Append(_ context.Context, e store.Event) error {
	f.appended = append(f.appended, e)
	return f.err
}

func TestInstrumentApprovals(t *testing.T) {
	conflict := &store.ConflictError{Current: store.Request{ID: "r-1", State: store.Approved, DecidedBy: "U1"}, Want: store.Denied}
	tests := []struct {
		name    string
		from    store.State
		to      store.State
		err     error
		outcome string // "" = nothing counted
	}{
		{"approve", store.Pending, store.Approved, nil, OutcomeApproved},
		{"deny", store.Pending, store.Denied, nil, OutcomeDenied},
		{"expire", store.Pending, store.Expired, nil, OutcomeExpired},
		{"cancel", store.Pending, store.Cancelled, nil, OutcomeCancelled},
		{"second click", store.Pending, store.Denied, conflict, OutcomeConflict},
		{"wrapped conflict", store.Pending, store.Approved, fmt.Errorf("approve r-1: %w", conflict), OutcomeConflict},
		{"store down", store.Pending, store.Approved, store.ErrUnavailable, ""},
		{"unknown request", store.Pending, store.Approved, store.ErrNotFound, ""},
		{"pending update", store.Pending, store.Pending, nil, ""},
		{"execute", store.Approved, store.Executing, nil, ""},
		{"scheduler takeover lost", store.Executing, store.Executing, conflict, ""},
		{"done", store.Executing, store.Done, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newMetrics(t, MetricsOptions{})
			fa := &fakeApprovals{err: tt.err}
			a := InstrumentApprovals(fa, m)
			r, err := a.Transition(context.Background(), "r-1", tt.from, store.Change{To: tt.to, By: "U2"})
			if r.ID != "r-1" || !errors.Is(err, tt.err) {
				t.Fatalf("Transition = (%+v, %v): result not passed through", r, err)
			}
			checkDecision(t, m, tt.outcome)
		})
	}
}

func TestInstrumentApprovalsRefusedClicks(t *testing.T) {
	m, _ := newMetrics(t, MetricsOptions{})
	fa := &fakeApprovals{}
	a := InstrumentApprovals(fa, m)
	ctx := context.Background()
	for _, typ := range []string{store.EventCreated, store.EventClickRefused, store.EventApproved, store.EventClickRefused, store.EventMDECall} {
		if err := a.Append(ctx, store.Event{Type: typ, RequestID: "r-1", Actor: "U1"}); err != nil {
			t.Fatal(err)
		}
	}
	if len(fa.appended) != 5 {
		t.Fatalf("Append passed %d events through, want 5", len(fa.appended))
	}
	if n := testutil.ToFloat64(m.decisions.WithLabelValues(OutcomeRefused)); n != 2 {
		t.Errorf("decisions{outcome=refused} = %v, want 2", n)
	}
	// Approved events are counted from the Transition, not the audit log.
	if n := sumCounter(t, m.decisions); n != 2 {
		t.Errorf("decisions sum = %v, want 2", n)
	}
}

func TestCommandLabelsBounded(t *testing.T) {
	m, _ := newMetrics(t, MetricsOptions{})
	m.Command("/isolate", "ok")
	m.Command("isolate", "ok")
	m.Command("status", "not_found")
	// Things that must never become label values.
	hostile := []string{"U024BE7LH", "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378", "host-42.contoso.com", "r-17", "<!channel>", "", "drop table", strings.Repeat("a", 40)}
	for _, h := range hostile {
		m.Command(h, h)
	}
	// Flood with well-formed but distinct names: at most 16 survive.
	for i := 0; i < 100; i++ {
		m.Command(fmt.Sprintf("cmd%d", i), fmt.Sprintf("out%d", i))
	}
	names, outcomes := map[string]bool{}, map[string]bool{}
	ch := make(chan prometheus.Metric, 1000)
	go func() { m.commands.Collect(ch); close(ch) }()
	for mt := range ch {
		pb := &dto.Metric{}
		if err := mt.Write(pb); err != nil {
			t.Fatal(err)
		}
		for _, lp := range pb.GetLabel() {
			switch lp.GetName() {
			case "command":
				names[lp.GetValue()] = true
			case "outcome":
				outcomes[lp.GetValue()] = true
			}
		}
	}
	for _, h := range hostile {
		if h != "" && (names[h] || outcomes[h]) {
			t.Errorf("hostile value %q became a label value", h)
		}
	}
	if len(names) > 17 || len(outcomes) > 17 {
		t.Errorf("label values not bounded: %d commands, %d outcomes", len(names), len(outcomes))
	}
	if n := testutil.ToFloat64(m.commands.WithLabelValues("isolate", "ok")); n != 2 {
		t.Errorf(`commands{command="isolate",outcome="ok"} = %v, want 2 ("/isolate" and "isolate" are one command)`, n)
	}
	if !names[Other] {
		t.Error(`no "other" command label after hostile input`)
	}
}

// TestMetricsPage scrapes /metrics over HTTP and checks every family is
// there with the right type, every label is from the allowed set, and the
// metrics pass promlint.
func TestMetricsPage(t *testing.T) {
	clk := testclock.New(t0)
	m, reg := newMetrics(t, MetricsOptions{Now: clk.Now, PendingRequests: func(context.Context) (int, error) { return 3, nil }})
	m.Command("isolate", "ok")
	m.ObserveAck(3 * time.Millisecond)
	m.ObserveAck(4 * time.Second)
	m.Reconnect()
	m.Reconnect()
	InstrumentDefender(fakeDefender{}, m).Machine(context.Background(), "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378")

	h := NewHandler(nil, reg, zerolog.Nop(), testOptions)
	code, body := get(t, h, http.MethodGet, "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	want := map[string]string{
		"isolatebot_commands_total":          "COUNTER",
		"isolatebot_decisions_total":         "COUNTER",
		"isolatebot_mde_calls_total":         "COUNTER",
		"isolatebot_limiter_decisions_total": "COUNTER",
		"isolatebot_limiter_queue_depth":     "GAUGE",
		"isolatebot_ack_latency_seconds":     "HISTOGRAM",
		"isolatebot_slack_reconnects_total":  "COUNTER",
		"isolatebot_pending_requests":        "GAUGE",
	}
	allowedLabels := map[string]bool{"command": true, "outcome": true, "operation": true, "code": true, "budget": true, "result": true}
	for name, typ := range want {
		mf, ok := mfs[name]
		if !ok {
			t.Errorf("family %s missing from /metrics", name)
			continue
		}
		if got := mf.GetType().String(); got != typ {
			t.Errorf("%s has type %s, want %s", name, got, typ)
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if !allowedLabels[lp.GetName()] {
					t.Errorf("%s has label %q outside the allowed set", name, lp.GetName())
				}
			}
		}
	}
	for name := range mfs {
		if strings.HasPrefix(name, "isolatebot_") && want[name] == "" {
			t.Errorf("unexpected family %s: add it to the test and deploy/README.md", name)
		}
	}
	if v := mfs["isolatebot_pending_requests"].GetMetric()[0].GetGauge().GetValue(); v != 3 {
		t.Errorf("pending_requests = %v, want 3", v)
	}
	if v := mfs["isolatebot_slack_reconnects_total"].GetMetric()[0].GetCounter().GetValue(); v != 2 {
		t.Errorf("slack_reconnects_total = %v, want 2", v)
	}
	hist := mfs["isolatebot_ack_latency_seconds"].GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 2 {
		t.Errorf("ack latency sample count = %d, want 2", hist.GetSampleCount())
	}
	for _, b := range hist.GetBucket() {
		want := uint64(0)
		switch {
		case math.IsInf(b.GetUpperBound(), +1):
			want = 2
		case b.GetUpperBound() >= 0.005:
			want = 1 // the 3 ms ack; the 4 s one is above every finite bucket
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("ack bucket le=%v = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if top := AckBuckets[len(AckBuckets)-1]; top != 3 {
		t.Errorf("top ack bucket = %v, want 3 (Slack's ack deadline)", top)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestPendingRequestsError(t *testing.T) {
	_, reg := newMetrics(t, MetricsOptions{PendingRequests: func(context.Context) (int, error) {
		return 0, errors.New("redis down")
	}})
	if n, err := testutil.GatherAndCount(reg, "isolatebot_pending_requests"); err != nil || n != 0 {
		t.Errorf("pending_requests samples = %d (err %v), want 0 when the store fails", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "isolatebot_limiter_queue_depth"); err != nil || n != len(budgets) {
		t.Errorf("queue_depth samples = %d (err %v), want one per budget", n, err)
	}
}

func TestNewMetricsTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg, MetricsOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg, MetricsOptions{}); err == nil {
		t.Fatal("second NewMetrics on one registry succeeded; want a registration error")
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	var r Reporter = m
	r.ObserveAck(time.Millisecond)
	r.Reconnect()
	r.Command("isolate", "ok")
	m.Decision(OutcomeApproved)
	d := fakeDefender{}
	if got := InstrumentDefender(d, nil); got != commands.Defender(d) {
		t.Error("InstrumentDefender(d, nil) did not return d")
	}
	l := &fakeLimiter{}
	if got := InstrumentLimiter(l, nil); got != ratelimit.Backend(l) {
		t.Error("InstrumentLimiter(l, nil) did not return l")
	}
	a := &fakeApprovals{}
	if got := InstrumentApprovals(a, nil); got != commands.Approvals(a) {
		t.Error("InstrumentApprovals(a, nil) did not return a")
	}
}

// TestConcurrentUse exercises every recording path from many goroutines
// for the race detector.
func TestConcurrentUse(t *testing.T) {
	clk := testclock.New(t0)
	m, reg := newMetrics(t, MetricsOptions{Now: clk.Now})
	l := InstrumentLimiter(&fakeLimiter{d: ratelimit.Decision{Allowed: true, At: t0.Add(time.Second)}}, m)
	a := InstrumentApprovals(&fakeApprovals{}, m)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				m.Command(fmt.Sprint("c", i%20), "ok")
				m.ObserveAck(time.Millisecond)
				d, _ := l.Reserve(context.Background(), defender.BudgetIsolate, time.Minute)
				l.Release(context.Background(), defender.BudgetIsolate, d)
				a.Transition(context.Background(), "r", store.Pending, store.Change{To: store.Approved})
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := testutil.ToFloat64(m.decisions.WithLabelValues(OutcomeApproved)); n != 400 {
		t.Errorf("approved = %v, want 400", n)
	}
	if n := testutil.ToFloat64(m.limiter.WithLabelValues(defender.BudgetIsolate, ResultQueued)); n != 400 {
		t.Errorf("queued = %v, want 400", n)
	}
	if d := m.queue.depth(clk.Now())[defender.BudgetIsolate]; d != 0 {
		t.Errorf("queue depth after releasing everything = %d, want 0", d)
	}
}
