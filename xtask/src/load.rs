//! Load generation for `bench` and `soak`: paced RTMP publishers and a player simulator.
