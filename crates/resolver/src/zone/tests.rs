use super::*;
use crate::answer::tests::zone_of;

#[test]
fn parents_are_empty_non_terminals() {
    let z = zone_of(
        "[space]\nname = \"t\"\n[[app]]\nname = \"api\"\n[[app.dyno]]\naddr = \"10.0.0.1:80\"\n",
    );
    let get = |n: &str| z.names.get(&*wire::encode_name(n).unwrap());
    assert!(get("app.localspace").unwrap().apex);
    let ent = get("api.app.localspace").unwrap();
    assert!(ent.a.dynos.is_empty() && ent.srv.is_empty() && ent.in_domain);
    assert!(get("_tcp.api.app.localspace").is_some());
    assert_eq!(get("web.api.app.localspace").unwrap().a.len(), 1);
    assert_eq!(get("1.web.api.app.localspace").unwrap().a.len(), 1);
    assert_eq!(get("_web._tcp.api.app.localspace").unwrap().srv.len(), 1);
    assert_eq!(z.len(), 6);
}

#[test]
fn bad_process_names_are_skipped() {
    // The config validates process names now; a policy built otherwise must still not
    // make the zone ambiguous.
    let source = spaced_config::Source {
        name: "t.toml",
        dir: std::path::Path::new("."),
        read: &|p| std::fs::read(p),
    };
    let text = "[space]\nname = \"t\"\n[[app]]\nname = \"api\"\n[[app.dyno]]\naddr = \"10.0.0.1:80\"\n[[app.dyno]]\naddr = \"10.0.0.2:80\"\n";
    let mut policy = spaced_config::parse(text.as_bytes(), &source).unwrap();
    let app = Arc::make_mut(&mut policy.apps[0]);
    app.dynos[0].process = "a.b".into();
    app.dynos[1].process = "Job".into();
    let (z, skipped) = Zone::compile(&policy, 1);
    assert_eq!(
        skipped,
        vec![Skipped::Process {
            app: "api".into(),
            process: "a.b".into()
        }]
    );
    // Upper case is folded: names are case-insensitive anyway.
    assert!(
        z.names
            .contains_key(&*wire::encode_name("job.api.app.localspace").unwrap())
    );
}

#[test]
fn in_domain_is_label_aligned() {
    let b = Builder {
        apex: wire::encode_name("app.localspace").unwrap(),
        ttl: 5,
        names: HashMap::new(),
        wildcards: HashMap::new(),
        skipped: Vec::new(),
    };
    assert!(b.in_domain(&wire::encode_name("x.app.localspace").unwrap()));
    assert!(b.in_domain(&wire::encode_name("app.localspace").unwrap()));
    assert!(!b.in_domain(&wire::encode_name("myapp.localspace").unwrap()));
    assert!(!b.in_domain(&wire::encode_name("localspace").unwrap()));
}
