vcl 4.1;
# Sluice CDN shield: Varnish in front of the origin.
#
# - Segments are immutable: cached for as long as the origin says (a day by default).
# - Playlists are cached briefly (the origin sends max-age of about half a target duration).
# - The whole URL, query string included, is the cache key, so LL-HLS blocking requests
#   (_HLS_msn, _HLS_part, _HLS_skip) are cached per query.
# - Concurrent misses for one object are coalesced by Varnish's waiting list: a thousand
#   viewers asking for a new segment cause one origin fetch.
# - Cookies never reach the origin or the cache key; the origin sets none.

import std;

backend sluice {
    .host = "sluice";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
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
    }
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
    if (bereq.url ~ "\.ts(\?|$)" || bereq.url ~ "\.(m4s|mp4)(\?|$)") {
        if (beresp.status == 200 || beresp.status == 206) {
            # Immutable segments: keep the origin's long max-age (at least a minute).
            if (beresp.ttl < 60s) {
                set beresp.ttl = 60s;
            }
            set beresp.grace = 10s;
        } else {
            set beresp.ttl = 1s;
            set beresp.grace = 0s;
        }
    } elsif (bereq.url ~ "\.m3u8") {
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
