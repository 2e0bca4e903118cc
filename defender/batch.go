package defender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of the batched reads.
const (
	// MaxListPages bounds the pages one look-up reads by following
	// @odata.nextLink (each page is one call against the API's budget).
	// MDE pages hold up to 10,000 entries, so this is far beyond any
	// outbreak; it only stops a server that pages without end.
	MaxListPages = 10
	// MaxActionsPerMachine is the $top of MachineActions: more Isolate and
	// Unisolate actions than this on one machine is ErrTruncated.
	MaxActionsPerMachine = 200
)

// isolationTypes restricts an action list to what isolation state is made
// of.
const isolationTypes = " and (type eq 'Isolate' or type eq 'Unisolate')"

// page is one page of an OData collection.
type page[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// list GETs cl and then each @odata.nextLink, up to maxPages pages, each
// one admitted call. more: MDE offered a page that was not read. A 404 is
// an empty list: MDE's answer when nothing matches.
func list[T any](ctx context.Context, c *Client, cl call, maxPages int) (items []T, more bool, err error) {
	for n := 1; ; n++ {
		var p page[T]
		err := c.do(ctx, cl, &p)
		if errors.Is(err, ErrNotFound) {
			return items, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		items = append(items, p.Value...)
		if p.NextLink == "" {
			return items, false, nil
		}
		if n >= maxPages {
			return items, true, nil
		}
		if cl, err = c.nextPage(cl, p.NextLink); err != nil {
			return nil, false, err
		}
	}
}

// nextPage is the call for an @odata.nextLink. The link must stay in the
// same collection of the same API: it receives the bearer token.
func (c *Client) nextPage(cl call, link string) (call, error) {
	cur, err := url.Parse(c.api + cl.path + "?" + cl.query)
	if err != nil {
		return call{}, &APIError{Op: cl.op, Kind: ErrUnavailable, Message: "cannot follow MDE's next-page link"}
	}
	u, err := cur.Parse(link) // a relative link is relative to this page
	if err != nil || u.Scheme != cur.Scheme || !strings.EqualFold(u.Host, cur.Host) ||
		u.EscapedPath() != cur.EscapedPath() || u.User != nil {
		return call{}, &APIError{Op: cl.op, Kind: ErrUnavailable, Message: "MDE's next-page link leaves the collection; not followed"}
	}
	cl.query = u.RawQuery
	return cl, nil
}

// pauseAfterNotFound waits Config.NotFoundRetryDelay before a GET answered
// 404 goes once more; again is false (with the error to return) when ctx
// ends first or its deadline leaves no time for it.
func (c *Client) pauseAfterNotFound(ctx context.Context, op string, notFound error) (again bool, err error) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= c.notFound {
		return false, notFound
	}
	c.logger(ctx).Info().Str("op", op).Dur("wait", c.notFound).Msg("MDE answered 404; reading once more (MDE answers spurious 404s)")
	if serr := c.sleep(ctx, c.notFound); serr != nil {
		return false, withCause(asAPIError(notFound), serr)
	}
	return true, nil
}

func truncated(op, what string) error {
	return &APIError{Op: op, Kind: ErrTruncated, Message: what}
}

// lowerIDs validates and de-duplicates ids (lower-cased, first-seen order).
func lowerIDs(op string, ids []string, valid func(string) bool, what string) ([]string, error) {
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !valid(id) {
			return nil, badRequest(op, fmt.Sprintf("%q is not %s", truncate(id, 50), what))
		}
		id = strings.ToLower(id)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// MachineActionsByID reads many actions with `id eq 'a' or id eq 'b' …`
// look-ups, each URL within MaxLookupURLBytes, following @odata.nextLink
// up to MaxListPages (more is ErrTruncated). Unknown ids are absent from
// the result, which is newest first. Every id must be a GUID.
func (c *Client) MachineActionsByID(ctx context.Context, ids []string) ([]MachineAction, error) {
	op := byIDOp(ids)
	_, chunks, err := planByID(op, len(c.api)+len(actionsPath), ids)
	if err != nil {
		return nil, err
	}
	out := []MachineAction{}
	for _, ch := range chunks {
		acts, more, err := list[MachineAction](ctx, c, call{op: op, method: http.MethodGet, budget: BudgetMachineActions, path: actionsPath, query: ch.query}, MaxListPages)
		if err != nil {
			return nil, err
		}
		if more {
			return nil, truncated(op, fmt.Sprintf("MDE has more than %d pages of answers", MaxListPages))
		}
		out = append(out, acts...)
	}
	SortNewestFirst(out)
	return out, nil
}

// ResolveMachines looks up machine ids (40 hex digits) and host names,
// mixed, with `id eq 'a' or computerDnsName eq 'b' or …` look-ups, each URL
// within MaxLookupURLBytes. A name without a dot also matches the FQDNs
// whose first label it is, but only when no machine has exactly that name
// (FindMachinesByName's rule, sorted out from one answer). The result has
// one Resolution per ref, in order; a ref that cannot be a name is not
// looked up (Resolution.Invalid). An @odata.nextLink is followed up to
// MaxListPages; beyond that, the refs of that look-up are Incomplete.
func (c *Client) ResolveMachines(ctx context.Context, refs []string) ([]Resolution, error) {
	op := resolveOp(refs)
	p := planResolve(refs)
	const path = "/api/machines"
	chunks, err := p.chunks(op, len(c.api)+len(path))
	if err != nil {
		return nil, err
	}
	var found []Machine
	incomplete := make([]bool, len(p.keys))
	for _, ch := range chunks {
		ms, more, err := list[Machine](ctx, c, call{op: op, method: http.MethodGet, budget: BudgetMachines, path: path, query: ch.query}, MaxListPages)
		if err != nil {
			return nil, err
		}
		found = append(found, ms...)
		for k := ch.first; k < ch.end; k++ {
			incomplete[k] = more
		}
	}
	return p.resolutions(found, incomplete), nil
}

// maxTagLen bounds a machine tag; MDE's own limit is lower.
const maxTagLen = 255

func checkTag(tag string) error {
	switch {
	case strings.TrimSpace(tag) == "":
		return errors.New("the tag is empty")
	case len(tag) > maxTagLen:
		return fmt.Errorf("the tag is longer than %d bytes", maxTagLen)
	case !utf8.ValidString(tag):
		return errors.New("the tag is not valid UTF-8")
	case strings.IndexFunc(tag, unicode.IsControl) >= 0:
		return errors.New("the tag contains control characters")
	}
	return nil
}

// tagFilter lists the machines carrying tag.
func tagFilter(tag string) string {
	return "machineTags/any(tag: tag eq " + odataString(tag) + ")"
}

// MachinesByTag lists the machines carrying an MDE machine tag
// (`machineTags/any(tag: tag eq 'X')`), following @odata.nextLink up to
// MaxListPages pages; more is ErrTruncated. No machine is an empty slice.
func (c *Client) MachinesByTag(ctx context.Context, tag string) ([]Machine, error) {
	op := fmt.Sprintf("list machines tagged %q", truncate(tag, 80))
	if err := checkTag(tag); err != nil {
		return nil, badRequest(op, err.Error())
	}
	ms, more, err := list[Machine](ctx, c, call{op: op, method: http.MethodGet, budget: BudgetMachines,
		path: "/api/machines", query: filterQuery(tagFilter(tag))}, MaxListPages)
	switch {
	case err != nil:
		return nil, err
	case more:
		return nil, truncated(op, fmt.Sprintf("more than %d pages of machines carry the tag", MaxListPages))
	case ms == nil:
		return []Machine{}, nil
	}
	return ms, nil
}

// ActionsForMachines reads the Isolate and Unisolate actions of many
// machines, up to top per machine (top <= 0: MaxActionsPerMachine), with
// `(machineId eq 'a' or …) and (type eq 'Isolate' or type eq 'Unisolate')`
// look-ups and $top = top × the machines in the look-up (at most 10,000).
// An answer that fills its $top, or offers another page, may miss a
// machine's newest action: ErrTruncated. An answer over MaxResponseBytes
// is not retried. The result is newest first.
func (c *Client) ActionsForMachines(ctx context.Context, machineIDs []string, top int) ([]MachineAction, error) {
	op := fmt.Sprintf("list actions of %d machines", len(machineIDs))
	return c.isolationActions(ctx, op, machineIDs, top)
}

func (c *Client) isolationActions(ctx context.Context, op string, machineIDs []string, top int) ([]MachineAction, error) {
	p, err := planActions(op, len(c.api)+len(actionsPath), machineIDs, top)
	if err != nil {
		return nil, err
	}
	out := []MachineAction{}
	for _, ch := range p.chunks {
		n := p.top * (ch.end - ch.first)
		acts, more, err := list[MachineAction](ctx, c, call{op: op, method: http.MethodGet, budget: BudgetMachineActions,
			path: actionsPath, query: ch.query + topParam + strconv.Itoa(n)}, 1)
		if err != nil {
			return nil, err
		}
		if more || len(acts) >= n {
			return nil, actionsTruncated(op, n)
		}
		out = append(out, acts...)
	}
	SortNewestFirst(out)
	return out, nil
}

const (
	actionsPath = "/api/machineactions"
	topParam    = "&$top="
)

func byIDOp(ids []string) string { return fmt.Sprintf("read %d machine actions", len(ids)) }

// planByID is MachineActionsByID's look-ups: the distinct ids, lower-cased,
// and their chunks.
func planByID(op string, base int, ids []string) ([]string, []orChunk, error) {
	keys, err := lowerIDs(op, ids, ValidActionID, "a machine action id (a GUID)")
	if err != nil {
		return nil, nil, err
	}
	terms := make([]string, len(keys))
	for i, id := range keys {
		terms[i] = eqTerm("id", id)
	}
	chunks, err := chunkOr(op, base, "", "", terms, 0, 0)
	return keys, chunks, err
}

// actionsPlan is ActionsForMachines' look-ups.
type actionsPlan struct {
	keys   []string // distinct machine ids, lower-cased
	chunks []orChunk
	top    int // per machine
}

func planActions(op string, base int, machineIDs []string, top int) (actionsPlan, error) {
	if top <= 0 {
		top = MaxActionsPerMachine
	}
	p := actionsPlan{top: min(top, maxTop)}
	var err error
	if p.keys, err = lowerIDs(op, machineIDs, ValidMachineID, "a machine id (40 hexadecimal digits)"); err != nil {
		return p, err
	}
	terms := make([]string, len(p.keys))
	for i, id := range p.keys {
		terms[i] = eqTerm("machineId", id)
	}
	// $top = top x machines must stay within MDE's 10,000.
	p.chunks, err = chunkOr(op, base, "(", ")"+isolationTypes, terms, maxTop/p.top, len(topParam)+len("10000"))
	return p, err
}

func actionsTruncated(op string, n int) error {
	return truncated(op, fmt.Sprintf("MDE has %d or more Isolate and Unisolate actions for these machines; not all were read", n))
}
