package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// responseCache answers exact repeats of deterministic requests (temperature
// 0) from memory. Keys are SHA-256 over the plan, the upstream, the path and
// the forwarded body, so one plan never sees another's answers.
type responseCache struct {
	mu         sync.Mutex
	ttl        time.Duration
	maxEntries int
	maxBytes   int64
	entries    map[string]cacheEntry
	now        func() time.Time
}

type cacheEntry struct {
	status      int
	contentType string
	body        []byte
	expires     time.Time
}

func newResponseCache(c CacheConfig) *responseCache {
	return &responseCache{ttl: c.ttl, maxEntries: c.MaxEntries, maxBytes: c.MaxEntryBytes, entries: map[string]cacheEntry{}, now: time.Now}
}

func cacheKey(planID, upstream, path string, body []byte) string {
	h := sha256.New()
	for _, s := range []string{planID, upstream, path} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func (c *responseCache) get(key string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return e, false
	}
	if c.now().After(e.expires) {
		delete(c.entries, key)
		return e, false
	}
	return e, true
}

func (c *responseCache) put(key string, e cacheEntry) {
	if int64(len(e.body)) > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= c.maxEntries {
		for k, old := range c.entries {
			if now.After(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.maxEntries {
				break
			}
			delete(c.entries, k) // random eviction: map order
		}
	}
	e.expires = now.Add(c.ttl)
	c.entries[key] = e
}
