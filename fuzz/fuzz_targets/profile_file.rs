#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use rift_proxy::harness::ApiHarness;
use rift_proxy::profile::Bindings;

thread_local! {
    static API: RefCell<ApiHarness> = RefCell::new(ApiHarness::new());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let bindings: Bindings = [("leader", "n2"), ("target", "n3")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    API.with_borrow_mut(|api| {
        api.reset();
        if let Err(reason) = api.profile_text(text, &bindings) {
            panic!("{reason}");
        }
    });
});
