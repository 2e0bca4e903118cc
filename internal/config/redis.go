package config

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/redis/go-redis/v9"
)

// ParseRedisURL turns REDIS_URL into options for redis.NewUniversalClient.
// Three forms, told apart by their query:
//
//	redis://[user:pass@]host:6379/0          one server (rediss:// for TLS, unix:///path.sock)
//	redis://host:26379?master_name=m&addr=h2:26379   Sentinel: the hosts are sentinels;
//	        userinfo is the sentinels' credentials, password= the master's
//	redis://host1:6379?addr=host2:6379&addr=host3:6379  Cluster: several addr=
//
// go-redis's connection and pool options (dial_timeout, pool_size, …) are
// applied as copied below; the few go-redis parses but isolate-bot would
// drop (unsupportedRedisOptions) are refused, and go-redis refuses any
// other unknown option. The error never contains the URL, which may hold a
// password.
// unsupportedRedisOptions are options go-redis's URL parsers accept but
// the universal options built here do not carry: silently dropping them
// would mislead.
var unsupportedRedisOptions = []string{
	"conn_max_lifetime_jitter", "max_concurrent_dials",
	"pipeline_pool_size", "pipeline_read_buffer_size", "pipeline_write_buffer_size",
}

func ParseRedisURL(s string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error quotes the whole URL, password included
		}
		return nil, fmt.Errorf("is not a valid URL: %w", err)
	}
	q := u.Query()
	for _, name := range unsupportedRedisOptions {
		if q.Has(name) {
			return nil, fmt.Errorf("option %s is not supported by isolate-bot; remove it", name)
		}
	}
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(s)
		if err != nil {
			return nil, err
		}
		if o.MasterName == "" {
			return nil, errors.New("master_name must not be empty")
		}
		return &redis.UniversalOptions{
			Addrs:            o.SentinelAddrs,
			MasterName:       o.MasterName,
			SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword,
			Username:         o.Username,
			Password:         o.Password,
			DB:               o.DB,
			TLSConfig:        o.TLSConfig,
			ClientName:       o.ClientName,
			Protocol:         o.Protocol,
			MaxRetries:       o.MaxRetries,
			MinRetryBackoff:  o.MinRetryBackoff,
			MaxRetryBackoff:  o.MaxRetryBackoff,
			DialTimeout:      o.DialTimeout,
			ReadTimeout:      o.ReadTimeout,
			WriteTimeout:     o.WriteTimeout,
			PoolFIFO:         o.PoolFIFO,
			PoolSize:         o.PoolSize,
			PoolTimeout:      o.PoolTimeout,
			MinIdleConns:     o.MinIdleConns,
			MaxIdleConns:     o.MaxIdleConns,
			MaxActiveConns:   o.MaxActiveConns,
			ConnMaxIdleTime:  o.ConnMaxIdleTime,
			ConnMaxLifetime:  o.ConnMaxLifetime,
			RouteByLatency:   o.RouteByLatency,
			RouteRandomly:    o.RouteRandomly,
		}, nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(s)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{
			Addrs:           o.Addrs,
			IsClusterMode:   true,
			Username:        o.Username,
			Password:        o.Password,
			TLSConfig:       o.TLSConfig,
			ClientName:      o.ClientName,
			Protocol:        o.Protocol,
			MaxRedirects:    o.MaxRedirects,
			ReadOnly:        o.ReadOnly,
			RouteByLatency:  o.RouteByLatency,
			RouteRandomly:   o.RouteRandomly,
			MaxRetries:      o.MaxRetries,
			MinRetryBackoff: o.MinRetryBackoff,
			MaxRetryBackoff: o.MaxRetryBackoff,
			DialTimeout:     o.DialTimeout,
			ReadTimeout:     o.ReadTimeout,
			WriteTimeout:    o.WriteTimeout,
			PoolFIFO:        o.PoolFIFO,
			PoolSize:        o.PoolSize,
			PoolTimeout:     o.PoolTimeout,
			MinIdleConns:    o.MinIdleConns,
			MaxIdleConns:    o.MaxIdleConns,
			MaxActiveConns:  o.MaxActiveConns,
			ConnMaxIdleTime: o.ConnMaxIdleTime,
			ConnMaxLifetime: o.ConnMaxLifetime,
		}, nil
	default:
		o, err := redis.ParseURL(s)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{
			Addrs:           []string{o.Addr}, // a unix socket path starts with "/": go-redis dials unix
			Username:        o.Username,
			Password:        o.Password,
			DB:              o.DB,
			TLSConfig:       o.TLSConfig,
			ClientName:      o.ClientName,
			Protocol:        o.Protocol,
			MaxRetries:      o.MaxRetries,
			MinRetryBackoff: o.MinRetryBackoff,
			MaxRetryBackoff: o.MaxRetryBackoff,
			DialTimeout:     o.DialTimeout,
			ReadTimeout:     o.ReadTimeout,
			WriteTimeout:    o.WriteTimeout,
			PoolFIFO:        o.PoolFIFO,
			PoolSize:        o.PoolSize,
			PoolTimeout:     o.PoolTimeout,
			MinIdleConns:    o.MinIdleConns,
			MaxIdleConns:    o.MaxIdleConns,
			MaxActiveConns:  o.MaxActiveConns,
			ConnMaxIdleTime: o.ConnMaxIdleTime,
			ConnMaxLifetime: o.ConnMaxLifetime,
		}, nil
	}
}

// RedactRedisURL returns s with any password (userinfo or password= query)
// replaced by "xxxxx", for logs and banners. An unparsable URL is masked whole.
func RedactRedisURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	q := u.Query()
	changed := false
	for _, k := range []string{"password", "sentinel_password"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed { // re-encoding reorders and escapes the query: only when needed
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
