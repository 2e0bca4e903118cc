package commands

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Membership of the allow-lists. User groups (S…) are resolved through the
// Directory (Slack). The cache serves refusals and the allow-list of a new
// request only: a decision (approve, deny, cancel) asks Slack again, so an
// approver removed from the group cannot decide once removed.

type groupHit struct {
	members map[string]bool
	at      time.Time
}

// isMember reports whether user is listed in ids directly or through one of
// the listed user groups, using the membership cache. A Directory failure
// is an error: callers fail closed.
func (s *Service) isMember(ctx context.Context, user string, ids []string) (bool, error) {
	ok, _, err := s.member(ctx, user, ids, false)
	return ok, err
}

// mayDecideAs reports whether user may make a decision as a member of ids.
// A cached "no" refuses at once (no Slack call for a flood of refusals); a
// "yes" is confirmed by reading the groups from Slack now, unless it was
// just read or user is listed by id. Any Directory failure is an error:
// callers fail closed.
func (s *Service) mayDecideAs(ctx context.Context, user string, ids []string) (bool, error) {
	ok, fresh, err := s.member(ctx, user, ids, false)
	if !ok || fresh {
		return ok, err
	}
	ok, _, err = s.member(ctx, user, ids, true)
	return ok, err
}

// member is isMember; fresh=true reads every group from the Directory. It
// also reports whether a "yes" rests on data read during this call (or on
// ids alone).
func (s *Service) member(ctx context.Context, user string, ids []string, fresh bool) (ok, readNow bool, err error) {
	for _, id := range ids {
		if id == user {
			return true, true, nil
		}
	}
	var errs []error
	for _, id := range ids {
		if !strings.HasPrefix(id, "S") {
			continue
		}
		members, readNow, err := s.groupMembers(ctx, id, fresh)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if members[user] {
			return true, readNow, nil
		}
	}
	return false, false, errors.Join(errs...)
}

// groupMembers returns group's members from the cache (unless fresh, or
// the entry is older than GroupCacheTTL) or from the Directory, which then
// refreshes the cache; readNow says it came from the Directory.
func (s *Service) groupMembers(ctx context.Context, group string, fresh bool) (members map[string]bool, readNow bool, err error) {
	now := s.now()
	if !fresh {
		s.mu.Lock()
		hit, ok := s.groups[group]
		s.mu.Unlock()
		if ok && now.Sub(hit.at) < s.cfg.GroupCacheTTL {
			return hit.members, false, nil
		}
	}
	if s.d.Directory == nil {
		return nil, false, errors.New("no user directory is configured to resolve user group " + group)
	}
	list, err := s.d.Directory.GroupMembers(ctx, group)
	if err != nil {
		return nil, false, err
	}
	m := make(map[string]bool, len(list))
	for _, u := range list {
		m[u] = true
	}
	s.mu.Lock()
	s.groups[group] = groupHit{members: m, at: now}
	s.mu.Unlock()
	return m, true, nil
}
