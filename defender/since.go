package defender

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// maxActionTypeLen bounds an action type; MDE's longest is about 30.
const maxActionTypeLen = 64

// sinceLayout renders an OData v4 DateTimeOffset literal in UTC to the
// second. OData date-times are unquoted; MDE's own samples filter this way
// (`lastUpdateTime ge 2019-11-22T00:00:00Z`, exposed-apis-odata-samples).
const sinceLayout = "2006-01-02T15:04:05Z"

// sincePlan is ActionsSince's one look-up: its op (for errors) and query.
type sincePlan struct {
	op    string
	query string
	since time.Time // rounded down to the second, UTC
}

// planSince validates typ and since and builds
// `type eq '<typ>' and creationDateTimeUtc ge <since>`. since is rounded
// down to the second, so the look-up never misses an action created in
// the second it starts; the caller matches by id anyway.
func planSince(typ string, since time.Time) (sincePlan, error) {
	p := sincePlan{op: fmt.Sprintf("list %q actions since %s", truncate(typ, 40), since.UTC().Format(time.RFC3339))}
	if err := checkActionType(typ); err != nil {
		return p, badRequest(p.op, err.Error())
	}
	if since.IsZero() {
		// Every action ever made: a caller's bug, and many pages of budget.
		return p, badRequest(p.op, "the start time is not set")
	}
	p.since = since.UTC().Truncate(time.Second)
	p.query = filterQuery(eqTerm("type", typ) + " and creationDateTimeUtc ge " + p.since.Format(sinceLayout))
	return p, nil
}

// checkActionType accepts MDE's action type names ("Isolate",
// "RunAntiVirusScan"): ASCII letters only, so the literal needs no
// escaping and a typo never reaches MDE.
func checkActionType(typ string) error {
	if typ == "" || len(typ) > maxActionTypeLen {
		return fmt.Errorf("the action type must be 1 to %d letters", maxActionTypeLen)
	}
	for i := 0; i < len(typ); i++ {
		if c := typ[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return fmt.Errorf("the action type %q is not letters only", truncate(typ, 40))
		}
	}
	return nil
}

// ActionsSince reads every machine action of type typ ("Isolate",
// "Unisolate", … as MDE spells them) created at or after since, with one
// `type eq '<typ>' and creationDateTimeUtc ge <since>` look-up (since in
// UTC, RFC 3339, rounded down to the second, so an action up to a second
// older may be included) following @odata.nextLink up to MaxListPages
// (more is ErrTruncated). Each page is one call against
// BudgetMachineActions: a batch's watcher reads all its actions for the
// price of one call per 10,000, where MachineActionsByID pays one per
// about 30 ids. The result is newest first; none is an empty slice. A
// 404 is an empty list and is not read again (the watcher reads again on
// its next round anyway).
func (c *Client) ActionsSince(ctx context.Context, typ string, since time.Time) ([]MachineAction, error) {
	p, err := planSince(typ, since)
	if err != nil {
		return nil, err
	}
	acts, more, err := list[MachineAction](ctx, c, call{op: p.op, method: http.MethodGet, budget: BudgetMachineActions,
		path: actionsPath, query: p.query, final404: true}, MaxListPages)
	switch {
	case err != nil:
		return nil, err
	case more:
		return nil, truncated(p.op, fmt.Sprintf("MDE has more than %d pages of actions", MaxListPages))
	case acts == nil:
		return []MachineAction{}, nil
	}
	SortNewestFirst(acts)
	return acts, nil
}
