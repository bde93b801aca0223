vcl 4.1;
# Varnish in front of a Sluice fleet (docker/compose.fleet.yaml): every node serves every stream
# (a node that does not own a stream forwards to its owner), so requests are spread round-robin
# over the healthy nodes. Caching rules are those of default.vcl (the single-node shield).
#
# - Segments are immutable (names are never reused across nodes or epochs): cached long.
# - Playlists are cached briefly; the whole URL, query included, is the key, so LL-HLS blocking
#   requests (_HLS_msn, _HLS_part, _HLS_skip) are cached per query.
# - A node that fails (connection refused, 5xx) is retried on the next node, so a node's death
#   costs viewers a stall, not an error. A node that does not own a stream holds a request for
#   it while the stream's next owner takes over (see cluster.failover_hold_ms), so
#   first_byte_timeout stays above that hold.

import std;
import directors;

probe sluice_health {
    .url = "/healthz";
    .interval = 2s;
    .timeout = 1s;
    .window = 3;
    .threshold = 2;
}

backend sluice1 {
    .host = "sluice1";
    .port = "8080";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
    .probe = sluice_health;
}

backend sluice2 {
    .host = "sluice2";
    .port = "8080";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
    .probe = sluice_health;
}

backend sluice3 {
    .host = "sluice3";
    .port = "8080";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 5s;
    .probe = sluice_health;
}

sub vcl_init {
    new fleet = directors.round_robin();
    fleet.add_backend(sluice1);
    fleet.add_backend(sluice2);
    fleet.add_backend(sluice3);
}

sub vcl_recv {
    set req.backend_hint = fleet.backend();
    if (req.url ~ "^/(open|send|idle|close|fcs)/") {
        # RTMPT sessions live on one node: not balanced per request.
        return (synth(404, "RTMPT is not served through the fleet shield"));
    }
    if (req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS") {
        return (synth(405, "Method Not Allowed"));
    }
    unset req.http.Cookie;
    unset req.http.Authorization;
    if (req.url ~ "^/(api|metrics|healthz|readyz)(/|\?|$)") {
        return (pass);
    }
    if (req.url ~ "\?") {
        set req.url = regsuball(req.url, "([?&])(?!_HLS_(msn|part|skip)=)[^&]*", "\1");
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

sub vcl_backend_fetch {
    # A retry goes to the next node of the round robin.
    set bereq.backend = fleet.backend();
}

sub vcl_backend_response {
    unset beresp.http.Set-Cookie;
    # A 503 with Retry-After is the fleet's own answer after holding the request for the next
    # owner (cluster.failover_hold_ms): every node would hold it again, so it goes to the player,
    # which retries; any other 5xx is one node's trouble and is retried on the next node.
    if (beresp.status >= 500 && !beresp.http.Retry-After && bereq.retries < 2) {
        return (retry);
    }
    if (bereq.url ~ "\.ts(\?|$)" || bereq.url ~ "\.(m4s|mp4)(\?|$)") {
        if (beresp.status == 200 || beresp.status == 206) {
            if (beresp.ttl < 60s) {
                set beresp.ttl = 60s;
            }
            set beresp.grace = 10s;
        } else {
            set beresp.ttl = 1s;
            set beresp.grace = 0s;
        }
    } elsif (bereq.url ~ "\.m3u8") {
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

sub vcl_backend_error {
    # Connection refused or timed out (a node just died): try the next node.
    if (bereq.retries < 2) {
        return (retry);
    }
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
