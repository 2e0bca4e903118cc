package defender

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// orderSlot is a Slot (and, through Admit, a Gate) that records how many
// token requests the authority had seen when admission was asked.
type orderSlot struct {
	auth       *fakeAuthority
	err        error
	waits      atomic.Int32
	tokensSeen atomic.Int64
}

func (s *orderSlot) Wait(context.Context) error {
	s.waits.Add(1)
	s.tokensSeen.Store(s.auth.tokens.Load())
	return s.err
}

func (s *orderSlot) Admit(ctx context.Context, _ string) error { return s.Wait(ctx) }

func (s *orderSlot) Throttled(context.Context, string, time.Duration) {}

// TestAdmissionBeforeToken: every call is admitted (by the caller's slot
// for writes, the Gate otherwise) before the client reads its token, so a
// long queue wait never leaves it with a stale one; a write holding a slot
// does not ask the Gate again; a refused admission sends nothing and reads
// no token.
func TestAdmissionBeforeToken(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		call    func(c *Client, slot Slot) error
		viaGate bool // admitted by the Gate, not by a slot
	}{
		{"isolate", func(c *Client, s Slot) error { _, err := c.Isolate(ctx, s, machineA, Full, "c"); return err }, false},
		{"unisolate", func(c *Client, s Slot) error { _, err := c.Unisolate(ctx, s, machineA, "c"); return err }, false},
		{"cancel", func(c *Client, s Slot) error { _, err := c.CancelMachineAction(ctx, s, actionA, "c"); return err }, false},
		{"isolate without slot", func(c *Client, _ Slot) error { _, err := c.Isolate(ctx, nil, machineA, Full, "c"); return err }, true},
		{"read", func(c *Client, _ Slot) error { _, err := c.Machine(ctx, machineA); return err }, true},
	}
	for _, tt := range tests {
		for _, refuse := range []bool{false, true} {
			name := tt.name
			if refuse {
				name += " refused"
			}
			t.Run(name, func(t *testing.T) {
				gate := &countingGate{}
				e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) },
					func(c *Config) { c.Gate = gate })
				slot := &orderSlot{auth: e.auth}
				if refuse {
					slot.err = errors.New("slot refused")
				}
				if tt.viaGate {
					e.client.gate = slot
				}
				err := tt.call(e.client, slot)
				if slot.waits.Load() != 1 || slot.tokensSeen.Load() != 0 {
					t.Fatalf("admitted %d times, after %d token requests; want once, before any token", slot.waits.Load(), slot.tokensSeen.Load())
				}
				if admits, _, _ := gate.snapshot(); len(admits) != 0 {
					t.Fatalf("the Gate was asked too: %v", admits)
				}
				switch {
				case refuse && (!errors.Is(err, slot.err) || e.auth.tokens.Load() != 0 || len(e.mde.requests()) != 0):
					t.Fatalf("refused: err %v, %d token requests, %d MDE requests; want the refusal and nothing sent", err, e.auth.tokens.Load(), len(e.mde.requests()))
				case !refuse && (err != nil || len(e.mde.requests()) != 1):
					t.Fatalf("err %v, %d MDE requests; want one", err, len(e.mde.requests()))
				}
			})
		}
	}
}

// TestSimulatorSlot: the simulator's writes wait on the caller's slot
// instead of its Gate, and a refused slot creates no action.
func TestSimulatorSlot(t *testing.T) {
	ctx := context.Background()
	for _, refuse := range []bool{false, true} {
		gate := &countingGate{}
		s := NewSimulator(nil)
		s.Gate = gate
		slot := &orderSlot{auth: &fakeAuthority{}}
		if refuse {
			slot.err = errors.New("slot refused")
		}
		_, err := s.Isolate(ctx, slot, SimWeb01, Full, "c")
		acts, _ := s.MachineActions(ctx, SimWeb01)
		if admits, _, _ := gate.snapshot(); slot.waits.Load() != 1 || len(admits) != 1 {
			t.Fatalf("refuse=%v: slot waited %d times, Gate admits %v; want the slot once and the Gate only for the read", refuse, slot.waits.Load(), admits)
		}
		switch {
		case refuse && (!errors.Is(err, slot.err) || len(acts) != 0):
			t.Fatalf("refused: err %v, %d actions; want the refusal and no action", err, len(acts))
		case !refuse && (err != nil || len(acts) != 1):
			t.Fatalf("err %v, %d actions; want one action", err, len(acts))
		}
	}
}
