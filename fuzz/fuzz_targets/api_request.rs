//! Control API requests. An input is up to four requests separated by NUL bytes, run in
//! order on a fresh control plane (so an apply followed by a delete, a status or an
//! events query is reachable, and a crash reproduces from its one input). In each
//! request the first byte picks the route, the rest up to a newline is a query/path
//! tail, the remainder is the body.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use rift_proxy::harness::ApiHarness;

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/partition"),
    ("POST", "/isolate"),
    ("POST", "/faults"),
    ("POST", "/apply"),
    ("POST", "/sources"),
    ("POST", "/heal"),
    ("GET", "/status"),
    ("GET", "/links"),
    ("GET", "/topology"),
    ("GET", "/profiles"),
    ("GET", "/events?"),
    ("DELETE", "/faults/"),
];

const MAX_REQUESTS: usize = 4;

thread_local! {
    static API: RefCell<ApiHarness> = RefCell::new(ApiHarness::new());
}

fuzz_target!(|data: &[u8]| {
    API.with_borrow_mut(|api| {
        // Every case starts from a fresh control plane: see ApiHarness::reset.
        api.reset();
        for request in data.split(|b| *b == 0).take(MAX_REQUESTS) {
            let Some((&pick, rest)) = request.split_first() else {
                continue;
            };
            let (method, path) = ROUTES[pick as usize % ROUTES.len()];
            let (tail, body) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&rest[..0], rest),
            };
            let uri = format!("{path}{}", String::from_utf8_lossy(tail));
            if let Err(reason) = api.request(method, &uri, body) {
                panic!("{reason}");
            }
        }
    });
});
