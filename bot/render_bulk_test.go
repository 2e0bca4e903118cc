package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// bulkTestCard is a 12-machine outbreak card, changed by mut.
func bulkTestCard(state store.State, b *store.Batch) commands.Card {
	c := testCard(state, func(r *store.Request) {
		r.MachineID, r.HostName, r.Needs = "bulk:9f2c", "12", 2
		if state != store.Pending {
			r.ApprovedBy, r.MachineActionID = []string{"U0BOB", "U0CAROL"}, "b-3"
		}
	})
	c.Machine = defender.Machine{}
	c.Bulk = &commands.BulkCard{Machines: 12, Batch: b}
	if state == store.Pending {
		m := testMachine()
		c.Bulk.Preview = []defender.Machine{m, m}
	}
	if state == store.Executing && !b.Finished() {
		c.Buttons = []commands.Button{commands.ButtonStop}
		c.Bulk.NextAt, c.Bulk.DoneBy = t0.Add(6*time.Minute), t0.Add(12*time.Minute)
	}
	return c
}

// TestRenderBulkCardGolden: an outbreak card while pending, while its
// batch runs (sent, isolated, failed, the estimate, Stop), once stopped and
// once finished, within Block Kit's limits and escaped.
func TestRenderBulkCardGolden(t *testing.T) {
	running := &store.Batch{ID: "b-3", State: store.BatchRunning,
		Counts: store.BatchCounts{Total: 12, Queued: 7, Sent: 5, Succeeded: 3, Unsuccessful: 1}}
	stopped := &store.Batch{ID: "b-3", State: store.BatchStopped, StoppedBy: "U0ALICE",
		Counts: store.BatchCounts{Total: 12, Queued: 4, Sent: 7, Failed: 1, Succeeded: 6, Unsuccessful: 1}}
	finished := &store.Batch{ID: "b-3", State: store.BatchDone,
		Counts: store.BatchCounts{Total: 12, Sent: 10, Skipped: 2, Succeeded: 9}}
	for _, tt := range []struct {
		name string
		card commands.Card
		want string // in the card's progress line
	}{
		{"card_bulk_pending", bulkTestCard(store.Pending, nil), "Needs 2 different approvers"},
		{"card_bulk_running", bulkTestCard(store.Executing, running), "5/12 sent · 3 isolated · 1 failed · 0 skipped · next at"},
		{"card_bulk_stopped", bulkTestCard(store.Executing, stopped), "stopped by <@U0ALICE> · 7/12 sent · 6 isolated · 2 failed"},
		{"card_bulk_finished", bulkTestCard(store.Done, finished), "finished · 10/10 sent · 9 isolated · 0 failed · 2 skipped · 1 with MDE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			blocks, text := Renderer{}.Card(tt.card)
			got := checked(t, blocks, text)
			if !strings.Contains(jsonUnquoted(t, got), tt.want) {
				t.Errorf("card does not say %q:\n%s", tt.want, got)
			}
			golden(t, tt.name, got)
		})
	}
}

// TestRenderListGolden: a batch summary is one message, its list escaped.
func TestRenderListGolden(t *testing.T) {
	m := commands.Message{Spans: []commands.Span{{Text: "Batch b-3 stopped by "}, {Kind: commands.User, Text: "U0ALICE"}, {Text: ": 2 isolated · 1 failed"}},
		List: []string{"isolated (2): host-1.corp.example, host-2.corp.example", "failed at MDE (Failed): error: <!channel> offline (1): host-3.corp.example"}}
	blocks, text := Renderer{}.Message(m)
	got := checked(t, blocks, text)
	golden(t, "msg_list", got)
}

// TestRenderListWithinLimits: 500 machines' lines fit one message, every
// line whole; far more lines fill 50 blocks and say how many are left out.
func TestRenderListWithinLimits(t *testing.T) {
	lines := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%d. outbreak-%04d.contoso.local — left out: several machines match (2)", i+1, i))
		}
		return out
	}
	all := lines(500)
	blocks, text := Renderer{}.Message(commands.Message{Spans: []commands.Span{{Text: "The 500 machines named:"}}, List: all})
	checkLimits(t, blocks, text)
	if len(blocks) > maxMessageBlocks {
		t.Fatalf("%d blocks; Slack takes %d", len(blocks), maxMessageBlocks)
	}
	var shown []string
	for _, b := range blocks[1:] {
		shown = append(shown, strings.Split(b.(*slack.SectionBlock).Text.Text, "\n")...)
	}
	if len(shown) != len(all) || shown[0] != all[0] || shown[499] != all[499] {
		t.Errorf("%d lines shown of %d; want all, whole and in order", len(shown), len(all))
	}

	blocks, text = Renderer{}.Message(commands.Message{Spans: []commands.Span{{Text: "head"}}, List: lines(5000)})
	checkLimits(t, blocks, text)
	if len(blocks) != maxMessageBlocks {
		t.Fatalf("%d blocks for 5,000 lines; want exactly %d", len(blocks), maxMessageBlocks)
	}
	last, ok := blocks[len(blocks)-1].(*slack.ContextBlock)
	if !ok || !strings.Contains(last.ContextElements.Elements[0].(*slack.TextBlockObject).Text, "more lines not shown") {
		t.Errorf("the last block does not say lines were left out: %#v", blocks[len(blocks)-1])
	}
}
