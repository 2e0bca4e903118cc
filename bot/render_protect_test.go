package bot

import (
	"strings"
	"testing"

	"github.com/soc/isolate-bot/commands"
	"github.com/soc/isolate-bot/store"
)

// protectedCard is a protected machine's card with approvers so far.
func protectedCard(state store.State, why string, approved ...string) commands.Card {
	c := testCard(state, func(r *store.Request) { r.Needs, r.Protected, r.ApprovedBy = 2, why, approved })
	c.Protected = why
	return c
}

// TestRenderProtectedGolden: a protected machine's card after its first of
// two approvals: the protected line, the approvals so far, and still the
// Approve button.
func TestRenderProtectedGolden(t *testing.T) {
	c := protectedCard(store.Pending, "matches dc*.contoso.local", "U0BOB")
	blocks, text := Renderer{}.Card(c)
	got := checked(t, blocks, text)
	golden(t, "card_pending_protected_one_of_two", got)
}

// TestRenderProtectedLines: which lines a card carries about protection and
// approvals, with the matcher's why escaped (tags are free text).
func TestRenderProtectedLines(t *testing.T) {
	tests := []struct {
		name    string
		card    commands.Card
		want    []string
		notWant []string
		approve bool
	}{
		{"not protected", testCard(store.Pending, nil), nil, []string{"Protected", "Approvals:"}, true},
		{"protected, none yet", protectedCard(store.Pending, "matches tag:Tier0"),
			[]string{":lock: *Protected machine* (`matches tag:Tier0`): isolating it needs 2 different approvers"}, []string{"Approvals:"}, true},
		{"one of two", protectedCard(store.Pending, "matches tag:Tier0", "U0BOB"),
			[]string{"Approvals: 1 of 2 (<@U0BOB>); 1 more needed"}, nil, true},
		{"approved by two", protectedCard(store.Approved, "matches tag:Tier0", "U0BOB", "U0CAROL"),
			[]string{"Approvals: 2 of 2 (<@U0BOB>, <@U0CAROL>)."}, []string{"more needed"}, false},
		{"hostile tag escaped", protectedCard(store.Pending, "matches tag:<!channel> & <@U0EVIL>"),
			[]string{"(`matches tag:&lt;!channel&gt; &amp; &lt;@U0EVIL&gt;`)"}, []string{"<!channel>", "<@U0EVIL>"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, text := Renderer{}.Card(tt.card)
			checkLimits(t, blocks, text)
			got := jsonUnquoted(t, marshal(t, blocks, text))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("card lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("card has %q:\n%s", w, got)
				}
			}
			if has := strings.Contains(got, ActionApprove); has != tt.approve {
				t.Errorf("Approve button present = %v, want %v", has, tt.approve)
			}
		})
	}
}
