package commands

import (
	"context"
	"fmt"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/internal/protect"
	"github.com/soc/isolate-bot/store"
)

// Protected machines (PROTECTED_MACHINES, PROTECTED_MODE): isolating one
// needs two different approvers, neither the requester (the store's
// approval set, see decide.go), or is refused outright. Releasing is never
// restricted: a protected machine cut off by mistake must come back as
// easily as any other.

// protectedApprovers is how many different approvers a protected machine's
// isolation needs.
const protectedApprovers = 2

// protection checks the machine m of request p against PROTECTED_MACHINES
// and returns why it is protected ("" if it is not, or p is a release).
// With PROTECTED_MODE=refuse it refuses a protected machine's isolation
// privately, before any card, and returns false.
func (s *Service) protection(ctx context.Context, inv Invocation, p Parsed, m defender.Machine) (string, bool) {
	if p.Op != OpIsolate {
		return "", true
	}
	hit, why := s.cfg.Protected.Match(protect.Of(m))
	if !hit {
		return "", true
	}
	if s.cfg.ProtectedMode == protect.Refuse {
		s.refuse(ctx, inv, m.ID, "protected machine: "+why,
			msg(code(hostOf(m)), txtf(" is a protected machine (%s), and this deployment refuses isolation requests for protected machines (PROTECTED_MODE=refuse); nothing was requested. Ask the SOC lead, or use the MDE portal.", why)))
		return "", false
	}
	return why, true
}

// guard marks r as a protected machine's request when why is set: it then
// needs protectedApprovers different approvers.
func guard(r store.Request, why string) store.Request {
	if why != "" {
		r.Needs, r.Protected = protectedApprovers, why
	}
	return r
}

// protectedNote ends the thread's first reply for a request needing more
// than one approver; nothing otherwise.
func protectedNote(r store.Request) []Span {
	if r.Required() < 2 {
		return nil
	}
	what := "This request"
	if r.Protected != "" {
		what = "The machine is protected (" + r.Protected + "), so this request"
	}
	return []Span{txtf(" %s needs %d different approvers, neither the requester.", what, r.Required())}
}

// approvalReason is the audit reason of an approval: which one of how many
// it is when the request needs several ("1 of 2, via Slack").
func (s *Service) approvalReason(r store.Request) string {
	if r.Required() < 2 {
		return s.via()
	}
	return fmt.Sprintf("%d of %d, %s", len(r.ApprovedBy), r.Required(), s.via())
}

// moreApprovalsMessage is the thread's reply to an approval that leaves
// the set incomplete: who approved, and how many more are needed.
func moreApprovalsMessage(r store.Request, by string, at string) Message {
	left := r.Required() - len(r.ApprovedBy)
	more := "one more approval is"
	if left != 1 {
		more = fmt.Sprintf("%d more approvals are", left)
	}
	return msg(txt("Approved by "), who(by), txtf(" (%d of %d) at %s; %s needed from another approver (not ", len(r.ApprovedBy), r.Required(), at, more),
		who(by), txt(", not the requester) before anything is sent to MDE."))
}

// approvedMessage is the thread's reply to the approval that completes the set.
func approvedMessage(r store.Request, by string, at string) Message {
	m := msg(txt("Approved by "), who(by))
	if n := len(r.ApprovedBy); r.Required() > 1 && n > 1 {
		m.Spans = append(m.Spans, txtf(" (%d of %d, after ", n, r.Required()))
		m.Spans = append(m.Spans, joinApprovers(r.ApprovedBy[:n-1])...)
		m.Spans = append(m.Spans, txt(")"))
	}
	m.Spans = append(m.Spans, txtf(" at %s; sending to MDE.", at))
	return m
}
