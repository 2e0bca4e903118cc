package commands

import (
	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// card is r's card as it stands: its machine (zero if not at hand), its
// MDE action as last read (nil if none or not at hand) and the buttons
// valid now.
func (s *Service) card(r store.Request, m defender.Machine, a *defender.MachineAction) Card {
	if isBulk(r) {
		return s.bulkCard(r, nil)
	}
	return Card{Request: r, Machine: m, Approvers: s.cfg.Approvers, Action: a, Protected: r.Protected, Buttons: cardButtons(r, a)}
}

// cardButtons is what a card offers in r's state: Approve and Deny while
// pending (also after a first of two approvals: the request stays pending); Cancel while its MDE action is Pending or InProgress; Release
// once an isolation succeeded; nothing otherwise.
func cardButtons(r store.Request, a *defender.MachineAction) []Button {
	switch {
	case r.State == store.Pending:
		return []Button{ButtonApprove, ButtonDeny}
	case a == nil:
		return nil
	case a.Status == defender.StatusPending || a.Status == defender.StatusInProgress:
		return []Button{ButtonCancel}
	case r.Command != store.Unisolate && a.Status == defender.StatusSucceeded:
		return []Button{ButtonRelease}
	}
	return nil
}
