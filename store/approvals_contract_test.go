package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/testclock"
)

// approvalsAPI is what Approvals and MemoryApprovals both offer:
// commands.Approvals plus Ping and Pending. (store cannot import commands;
// cmd/bot's wiring checks the real interface at compile time.)
type approvalsAPI interface {
	Create(ctx context.Context, r Request) (Request, error)
	Get(ctx context.Context, id string) (Request, error)
	Transition(ctx context.Context, id string, from State, ch Change) (Request, error)
	Approve(ctx context.Context, id string, ch Change) (Request, Approval, error)
	ForMachine(ctx context.Context, machineID string) (Request, error)
	Due(ctx context.Context, limit int) ([]Request, error)
	FirstDelivery(ctx context.Context, key string, ttl time.Duration) (bool, error)
	Append(ctx context.Context, e Event) error
	History(ctx context.Context, requestID string) ([]Event, error)
	Hit(ctx context.Context, key string, window time.Duration) (int64, error)
	Hits(ctx context.Context, key string) (int64, error)
	AuditTail(ctx context.Context, n int64) ([]Event, error)
	Ping(ctx context.Context) error
	Pending(ctx context.Context) (int, error)
}

var (
	_ approvalsAPI = (*Approvals)(nil)
	_ approvalsAPI = (*MemoryApprovals)(nil)
)

// approvalsUnderTest is one backend as the contract sees it.
type approvalsUnderTest struct {
	approvalsAPI
	// replica returns another instance with the same config over its own
	// connection pool: a second bot replica. The memory twin returns itself.
	replica func(t testing.TB) approvalsAPI
	// auditLen is the length of the global audit stream.
	auditLen func(t testing.TB) int64
	// auditIDs are the global audit stream's entry ids, oldest first.
	auditIDs func(t testing.TB) []string
}

// newAPClock is the injected clock (internal/testclock). It drives record
// times everywhere; TTLs only in the memory twin (Redis expires keys on its
// own clock, so tests advance the clock and then poll with a deadline,
// which suits both).
func newAPClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC))
}

// apEventually polls cond until it holds or 10 s pass.
func apEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// atOnce runs fn(0) … fn(n-1) in goroutines released together (the
// races of the contract) and waits for all of them.
func atOnce(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func apMachine(i int) string { return fmt.Sprintf("%040x", 0xabc000+i) }

func apRequest(machine string, expires time.Time) Request {
	return Request{
		Command:       Isolate,
		MachineID:     machine,
		HostName:      "ws-0042.corp.example",
		IsolationType: "Full",
		Comment:       "ransomware <script> & beacon",
		Requester:     "U0REQ",
		Channel:       "C0SOC",
		ExpiresAt:     expires,
	}
}

// apStatePath is how a fresh pending request reaches each state.
var apStatePath = map[State][]State{
	Pending:   {},
	Approved:  {Approved},
	Denied:    {Denied},
	Expired:   {Expired},
	Cancelled: {Cancelled},
	Executing: {Approved, Executing},
	Done:      {Approved, Executing, Done},
	Failed:    {Approved, Executing, Failed},
}

var apStates = []State{Pending, Approved, Denied, Expired, Cancelled, Executing, Done, Failed}

// apSetup makes a fresh backend with its own key prefix, driven by a new
// injected clock (cfg.Now and cfg.Prefix are overwritten).
type apSetup func(t *testing.T, cfg ApprovalsConfig) (approvalsUnderTest, *testclock.Clock)

// approvalsContract is the one suite every backend must pass, one named
// case per behaviour; each case is a function of its own below.
var approvalsContract = []struct {
	name string
	run  func(t *testing.T, setup apSetup)
}{
	{"CreateGetForMachine", apCreateGetForMachine},
	{"OneOpenRequestPerMachine", apOneOpenRequestPerMachine},
	{"ConcurrentCreateOneWins", apConcurrentCreateOneWins},
	{"TransitionTable", apTransitionTable},
	{"ChangeFields", apChangeFields},
	{"ConcurrentApproveOneWins", apConcurrentApproveOneWins},
	{"ApproveDenyExpireRace", apApproveDenyExpireRace},
	{"IfVersionTakeoverOnce", apIfVersionTakeoverOnce},
	{"PendingPastExpiresAt", apPendingPastExpiresAt},
	{"DueOrderAndPendingCount", apDueOrderAndPendingCount},
	{"FirstDelivery", apFirstDelivery},
	{"Hits", apHits},
	{"AuditTail", apAuditTail},
	{"AuditHistory", apAuditHistory},
	{"AuditTrimming", apAuditTrimming},
	{"AuditRetention", apAuditRetention},
	{"RetentionExpiresRecords", apRetentionExpiresRecords},
	{"ApproveSetOfTwo", apApproveSetOfTwo},
	{"ApproveSingle", apApproveSingle},
	{"ApproveIncompleteSetNotByTransition", apApproveIncompleteSetNotByTransition},
	{"ApprovePastExpiresAt", apApprovePastExpiresAt},
	{"ConcurrentApproversCompleteOnce", apConcurrentApproversCompleteOnce},
}

// runApprovalsContract runs every case of approvalsContract against the
// backend newApprovals makes.
func runApprovalsContract(t *testing.T, newApprovals func(t testing.TB, cfg ApprovalsConfig) approvalsUnderTest) {
	setup := func(t *testing.T, cfg ApprovalsConfig) (approvalsUnderTest, *testclock.Clock) {
		t.Helper()
		clk := newAPClock()
		cfg.Now = clk.Now
		cfg.Prefix = testPrefix(t)
		return newApprovals(t, cfg), clk
	}
	for _, c := range approvalsContract {
		t.Run(c.name, func(t *testing.T) { c.run(t, setup) })
	}
}

// apReach moves a new pending request on machine to state s.
func apReach(t *testing.T, a approvalsAPI, machine string, exp time.Time, s State) Request {
	t.Helper()
	ctx := t.Context()
	r, err := a.Create(ctx, apRequest(machine, exp))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	from := Pending
	for _, to := range apStatePath[s] {
		if r, err = a.Transition(ctx, r.ID, from, Change{To: to, By: "U0MGR"}); err != nil {
			t.Fatalf("Transition %s → %s: %v", from, to, err)
		}
		from = to
	}
	return r
}

func apIDs(rs []Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// apIDLess compares stream entry ids "<ms>-<seq>".
func apIDLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) < len(bm)
	}
	if am != bm {
		return am < bm
	}
	if len(as) != len(bs) {
		return len(as) < len(bs)
	}
	return as < bs
}
