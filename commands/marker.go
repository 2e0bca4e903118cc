package commands

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/soc/isolate-bot/defender"
	"github.com/soc/isolate-bot/store"
)

// The request's marker in its MDE comment is how reconciliation finds the
// action a call with an unknown outcome created (see send.go).

// MaxMDECommentRunes bounds the comment sent to MDE. MDE documents no limit;
// this conservative bound truncates the analyst's part, which comes last.
const MaxMDECommentRunes = 1000

// timeSkew is the clock difference between us and MDE that reconciliation
// tolerates when it compares an action's creation with the approval.
const timeSkew = time.Minute

// Marker is the exact tag that starts the MDE comment of request id
// ("[isolate-bot r-7]" never matches r-70: the bracket closes it).
func Marker(id string) string { return "[isolate-bot " + id + "]" }

// markerLike is the opening of anything that could read as a marker, in
// any case and spacing, as an analyst might type or paste it.
var markerLike = regexp.MustCompile(`(?i)\[(\s*isolate-bot)`)

// MDEComment is the comment sent to MDE: the marker first (MDE may cut the
// end of a long comment, and reconciliation needs the marker), then who
// asked and approved (MDE records only the app as requestor), then the
// analyst's comment, with marker-like text in it neutralised so it can
// never be taken for another request's marker.
func MDEComment(r store.Request) string { return MDECommentVia(r, "Slack") }

// MDECommentVia is MDEComment for a request decided through via ("Slack",
// "console").
func MDECommentVia(r store.Request, via string) string {
	head := fmt.Sprintf("%s requested by %s via %s, approved by %s: ", Marker(r.ID), r.Requester, via, r.DecidedBy)
	c := markerLike.ReplaceAllString(r.Comment, "($1")
	if room := MaxMDECommentRunes - utf8.RuneCountInString(head); utf8.RuneCountInString(c) > room {
		c = string([]rune(c)[:max(room-1, 0)]) + "…"
	}
	return head + c
}

// legacySuffix ends the MDE comments of versions that put the marker last,
// so a request sent by one of them during a rolling upgrade is still found.
// It names requester and approver, which an analyst's text cannot predict
// for a request not yet decided.
func legacySuffix(r store.Request) string {
	return fmt.Sprintf(" — requested by %s via Slack, approved by %s, isolate-bot request %s", r.Requester, r.DecidedBy, Marker(r.ID))
}

// marked reports whether comment is the MDE comment of request r: it starts
// with r's marker (or ends with the legacy suffix). Text merely containing
// the marker, such as an analyst's or a portal user's comment quoting it,
// does not count.
func marked(comment string, r store.Request) bool {
	return strings.HasPrefix(comment, Marker(r.ID)+" ") || comment == Marker(r.ID) ||
		(r.DecidedBy != "" && strings.HasSuffix(comment, legacySuffix(r)))
}

// actionType is the MDE action type r's call creates.
func actionType(r store.Request) string {
	if r.Command == store.Unisolate {
		return "Unisolate"
	}
	return "Isolate"
}

// createdBy reports whether a is the action request r's call created: its
// type, r's marker, and created after the approval (less a minute of clock
// skew, so a reused id of a wiped store cannot match an old action).
func createdBy(a defender.MachineAction, r store.Request) bool {
	return strings.EqualFold(a.Type, actionType(r)) && marked(a.RequestorComment, r) &&
		!a.CreationDateTimeUTC.Before(r.DecidedAt.Add(-timeSkew))
}
