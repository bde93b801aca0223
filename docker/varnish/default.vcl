vcl 4.1;
# Sluice CDN shield: Varnish in front of the origin.
#
# - Segments are immutable: cached for as long as the origin says (a day by default).
# - Playlists are cached briefly (the origin sends max-age of about half a target duration).
# - The whole URL, query string included, is the cache key, so LL-HLS blocking requests
#   (_HLS_msn, _HLS_part, _HLS_skip) are cached per query (RFC 8216bis §6.2.5.2: a blocking
#   response names a future playlist and never changes, so it is cached for the origin's
#   lifetime, 6 target durations by Appendix B.1's table).
# - Concurrent misses for one object are coalesced by Varnish's waiting list: a thousand
#   viewers asking for a new segment, or blocked on the next LL-HLS part, cause one origin
#   fetch. That only holds while the response is cacheable: an uncacheable answer (ttl 0 or
#   beresp.uncacheable, i.e. hit-for-miss/hit-for-pass) wakes the waiters into fetches of their
#   own, one after the other. So every answer to a blocking request gets a TTL above zero, errors
#   included, and busy objects are never bypassed (req.hash_ignore_busy stays false).
# - Backend timeouts exceed the longest hold of a blocking request (3 target durations, §6.2.5.2)
#   for target durations up to 6 s; preload-hinted parts stream to every waiting viewer as their
#   bytes arrive (beresp.do_stream), and are cached once complete.
# - Cookies never reach the origin or the cache key; the origin sets none.

import std;

backend sluice {
    .host = "sluice";
    .port = "8080";
    .connect_timeout = 2s;
    # A blocking playlist request is held up to 3 target durations before the origin answers
    # 503 (RFC 8216bis §6.2.5.2): 20 s covers target durations up to 6 s with margin.
    .first_byte_timeout = 20s;
    # A preload-hinted part streams as it is produced: one part target between bytes at most.
    .between_bytes_timeout = 10s;
    .probe = {
        .url = "/healthz";
        .interval = 5s;
        .timeout = 2s;
        .window = 5;
        .threshold = 3;
    }
}

sub vcl_recv {
    # RTMPT (RTMP tunnelled over HTTP polling): POSTs carrying one session's RTMP bytes, answered
    # in order. Never cached, never coalesced, bodies passed through as they are.
    if (req.url ~ "^/(open|send|idle|close|fcs)/") {
        if (req.method != "POST") {
            return (synth(405, "Method Not Allowed"));
        }
        return (pass);
    }
    if (req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS") {
        return (synth(405, "Method Not Allowed"));
    }
    unset req.http.Cookie;
    unset req.http.Authorization;
    # Operator endpoints are never cached.
    if (req.url ~ "^/(api|metrics|healthz|readyz)(/|\?|$)") {
        return (pass);
    }
    # Only HLS query parameters (and the DVR playlist's start-over `start`) matter to the
    # origin; drop the rest (tracking parameters would otherwise split the cache).
    if (req.url ~ "\?") {
        set req.url = regsuball(req.url, "([?&])(?!(_HLS_(msn|part|skip)|start)=)[^&]*", "\1");
        set req.url = regsuball(req.url, "&&+", "&");
        set req.url = regsub(req.url, "[?&]+$", "");
        set req.url = regsub(req.url, "\?&", "?");
        # One cache key per directive set, whatever order a client wrote them in.
        set req.url = std.querysort(req.url);
    }
    # Never skip the waiting list: concurrent requests for one object share one fetch.
    set req.hash_ignore_busy = false;
    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    if (req.http.Accept-Encoding ~ "gzip" && req.url ~ "\.m3u8") {
        hash_data("gzip");
    }
    return (lookup);
}

sub vcl_backend_response {
    unset beresp.http.Set-Cookie;
    if (bereq.url ~ "^/(open|send|idle|close|fcs)/") {
        # RTMPT clients need an exact Content-Length (librtmp reads nothing else): no streaming.
        set beresp.do_stream = false;
        set beresp.uncacheable = true;
        return (deliver);
    }
    if (bereq.url ~ "\.(ts|m4s|mp4|m4a|m4v|aac)(\?|$)") {
        # Segments, LL-HLS parts and init segments: immutable names. A preload-hinted part is
        # requested before it exists; the origin holds the request until the part's first CMAF
        # chunk, then answers 200 without Content-Length (chunked) and sends each chunk as it is
        # written, so stream them to every coalesced viewer at once (do_stream). Caching it is
        # safe: the origin ends such a body normally only when the part is complete (it is then
        # byte for byte the part served later with Content-Length); a part given up mid-way is
        # cut before the chunked terminator, which fails this fetch, so Varnish drops the
        # object instead of keeping a short part.
        set beresp.do_stream = true;
        if (beresp.status == 200 || beresp.status == 206) {
            # Keep the origin's long max-age (at least a minute).
            if (beresp.ttl < 60s) {
                set beresp.ttl = 60s;
            }
            set beresp.grace = 10s;
        } else {
            # A name that does not exist yet may exist soon: remember the miss briefly.
            set beresp.ttl = 1s;
            set beresp.grace = 0s;
        }
        return (deliver);
    }
    if (bereq.url ~ "\.m3u8\?(.*&)?_HLS_msn=") {
        # Blocking playlist reload: the answer for a future (msn, part) never changes, so keep
        # the origin's lifetime (6 target durations by RFC 8216bis Appendix B.1). Errors (400 for
        # a request too far ahead, 503 after the hold limit) are cached for a moment rather than
        # made uncacheable, so a waiting list of viewers shares one answer instead of each
        # refetching in turn.
        if (beresp.status == 200) {
            if (beresp.ttl <= 0s) {
                set beresp.ttl = 12s;
            }
            set beresp.grace = 0s;
        } else {
            set beresp.ttl = 1s;
            set beresp.grace = 0s;
        }
        return (deliver);
    }
    if (bereq.url ~ "\.m3u8") {
        # Live playlists: the origin's short max-age, never served stale for long.
        if (beresp.ttl > 2s || beresp.ttl <= 0s) {
            set beresp.ttl = 1s;
        }
        set beresp.grace = 1s;
    } else {
        if (beresp.ttl > 5s) {
            set beresp.ttl = 5s;
        }
    }
    if (beresp.status >= 500) {
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
    }
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}
