//! One test per semantic rule of the issue (BuildKit's behaviour).

use remfile_plan::{Base, CopySource, FromRef, Op, PlanError, PlanOptions, RunMount};

use crate::helpers::*;

// ---------- ARG scoping ----------

#[test]
fn pre_from_arg_is_visible_only_in_from() {
    let p = plan("ARG V=3.18\nFROM alpine:$V\nRUN echo $V\n", &[]);
    let s = last(&p);
    assert!(
        matches!(&s.base, Base::Image { image, .. } if image == "docker.io/library/alpine:3.18")
    );
    assert_eq!(get(&the_run(&p).env, "V"), None);
}

#[test]
fn pre_from_arg_enters_a_stage_through_arg_without_value() {
    let p = plan("ARG V=1\nFROM scratch\nARG V\nRUN x\n", &[]);
    assert_eq!(get(&the_run(&p).env, "V"), Some("1"));
    let p = plan("ARG V=1\nFROM scratch\nARG V\nRUN x\n", &[("V", "2")]);
    assert_eq!(get(&the_run(&p).env, "V"), Some("2"));
}

#[test]
fn pre_from_arg_default_sees_earlier_ones_and_predefined() {
    let p = plan("ARG A=x\nARG B=${A}-$TARGETARCH\nFROM busybox:$B\n", &[]);
    assert!(
        matches!(&last(&p).base, Base::Image { original, .. } if original == "busybox:x-amd64")
    );
}

#[test]
fn build_arg_overrides_defaults_verbatim() {
    let src = "ARG G=g\nFROM busybox:$G\nARG S=s\nRUN x\n";
    let p = plan(src, &[("G", "1.36"), ("S", "$NOT_EXPANDED")]);
    assert!(matches!(&last(&p).base, Base::Image { original, .. } if original == "busybox:1.36"));
    assert_eq!(get(&the_run(&p).env, "S"), Some("$NOT_EXPANDED"));
    assert!(
        !p.warnings
            .iter()
            .any(|w| w.message.contains("not consumed")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn undeclared_build_arg_is_a_warning_not_used() {
    let p = plan("FROM scratch\nRUN x\n", &[("NOPE", "1")]);
    assert_eq!(get(&the_run(&p).env, "NOPE"), None);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("[NOPE]") && w.message.contains("not consumed")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn arg_without_default_is_unset_not_empty() {
    let p = plan(
        "FROM scratch\nARG A\nARG B=\nENV X=${A-unset} Y=${B-unset} Z=${B:-empty}\nRUN x\n",
        &[],
    );
    let r = the_run(&p);
    assert_eq!(get(&r.env, "A"), None);
    assert_eq!(get(&r.env, "B"), Some(""));
    assert_eq!(get(&r.env, "X"), Some("unset"));
    assert_eq!(get(&r.env, "Y"), Some(""));
    assert_eq!(get(&r.env, "Z"), Some("empty"));
}

#[test]
fn arg_default_is_expanded_with_the_stage_env() {
    let p = plan("FROM busybox\nENV E=e\nARG A=$E-${PATH}\nRUN x\n", &[]);
    assert_eq!(get(&the_run(&p).env, "A"), Some("e-/bin:/usr/bin"));
}

#[test]
fn arg_pairs_are_expanded_before_any_is_declared() {
    // BuildKit expands the whole instruction first: B does not see the A of its own line
    let p = plan(
        "FROM busybox\nARG A=1 B=${A}b\nARG A=2 C=${A}c\nRUN x\n",
        &[],
    );
    let r = the_run(&p);
    assert_eq!(get(&r.env, "B"), Some("b"));
    assert_eq!(get(&r.env, "C"), Some("1c"));
    assert_eq!(get(&r.env, "A"), Some("2"));
    // pre-FROM ARGs go one by one
    let p = plan("ARG G1=g G2=${G1}2\nFROM busybox\nARG G2\nRUN x\n", &[]);
    assert_eq!(get(&the_run(&p).env, "G2"), Some("g2"));
}

#[test]
fn stage_arg_names_are_expanded_and_unquoted() {
    let src = "FROM busybox\nARG K=KEY\nARG ${K}=d ${K}2=x \"Q\"=1 'S'=2\nRUN x\n";
    let p = plan(src, &[("KEY", "cli")]);
    let r = the_run(&p);
    assert_eq!(get(&r.env, "KEY"), Some("cli"));
    assert_eq!(get(&r.env, "KEY2"), Some("x"));
    assert_eq!(get(&r.env, "Q"), Some("1"));
    assert_eq!(get(&r.env, "S"), Some("2"));
    // a name that expands to nothing is an error
    plan_err("FROM busybox\nARG ${UNSET}=1\n", &[]);
}

#[test]
fn an_empty_chmod_is_none() {
    let p = plan(
        "FROM scratch\nARG M\nCOPY --chmod= a /a\nCOPY --chmod=$M b /b\n",
        &[],
    );
    let copies: Vec<_> = last(&p)
        .steps
        .iter()
        .filter_map(|st| match &st.op {
            Op::Copy(c) => Some(c.chmod.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(copies, vec![None, None]);
}

#[test]
fn an_empty_from_is_the_context() {
    let p = plan(
        "FROM busybox\nCOPY --from= a /a\nRUN --mount=type=bind,from=,target=/m x\n",
        &[],
    );
    let s = last(&p);
    let copy = s
        .steps
        .iter()
        .find_map(|st| match &st.op {
            Op::Copy(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(copy.from, None);
    assert_eq!(p.stages.len(), 1);
}

// ---------- stage scoping and inheritance ----------

#[test]
fn env_and_arg_are_scoped_to_their_stage() {
    let p = plan(
        "FROM busybox AS a\nARG A=1\nENV E=1\nRUN a\nFROM busybox\nCOPY --from=a /x /x\nRUN b\n",
        &[],
    );
    let r = the_run(&p);
    assert_eq!(get(&r.env, "A"), None);
    assert_eq!(get(&r.env, "E"), None);
}

#[test]
fn from_stage_inherits_env_args_and_config() {
    let p = plan(
        "FROM busybox AS a\nARG A=1\nENV E=2\nWORKDIR /w\nUSER u\nFROM a\nRUN x\n",
        &[],
    );
    let s = last(&p);
    assert_eq!(s.base, Base::Stage { stage: 0 });
    assert_eq!(s.depends_on, vec![0]);
    let r = the_run(&p);
    assert_eq!(get(&r.env, "A"), Some("1"));
    assert_eq!(get(&r.env, "E"), Some("2"));
    assert_eq!(r.workdir, "/w");
    assert_eq!(r.user, "u");
    assert!(r.env.iter().any(|e| e == "PATH=/bin:/usr/bin"));
    // ARGs are never in the image config, ENV is
    assert_eq!(s.config.env_get("E"), Some("2"));
    assert_eq!(s.config.env_get("A"), None);
    assert_eq!(s.config.labels.get("base").map(String::as_str), Some("yes"));
}

#[test]
fn env_beats_arg_of_the_same_name() {
    let p = plan(
        "FROM scratch\nARG A=arg\nENV A=env-$A\nRUN x\n",
        &[("A", "cli")],
    );
    assert_eq!(get(&the_run(&p).env, "A"), Some("env-cli"));
    assert_eq!(last(&p).config.env_get("A"), Some("env-cli"));
}

#[test]
fn base_image_env_is_visible() {
    let p = plan("FROM busybox\nENV PATH=/opt/bin:$PATH\nRUN x\n", &[]);
    assert_eq!(
        get(&the_run(&p).env, "PATH"),
        Some("/opt/bin:/bin:/usr/bin")
    );
    assert_eq!(last(&p).config.env, vec!["PATH=/opt/bin:/bin:/usr/bin"]);
}

#[test]
fn default_path_when_the_base_has_none() {
    let p = plan("FROM scratch\nRUN x\n", &[]);
    assert_eq!(
        get(&the_run(&p).env, "PATH"),
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    );
}

#[test]
fn env_pairs_see_the_values_from_before_the_instruction() {
    let p = plan("FROM scratch\nENV A=0\nENV A=1 B=$A\nRUN x\n", &[]);
    let r = the_run(&p);
    assert_eq!(get(&r.env, "A"), Some("1"));
    assert_eq!(get(&r.env, "B"), Some("0"));
}

#[test]
fn second_env_replaces_the_first_in_place() {
    let p = plan("FROM scratch\nENV A=1\nENV B=2\nENV A=3\n", &[]);
    assert_eq!(
        last(&p).config.env,
        vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=3",
            "B=2"
        ]
    );
}

#[test]
fn env_values_have_quotes_removed_and_escapes_applied() {
    let p = plan(
        "FROM scratch\nENV A=\"two words\" B=x\\ y C='$NOPE' D=\"$C\" E=한국어\nENV F G H\n",
        &[],
    );
    let c = &last(&p).config;
    assert_eq!(c.env_get("A"), Some("two words"));
    assert_eq!(c.env_get("B"), Some("x y"));
    assert_eq!(c.env_get("C"), Some("$NOPE"));
    assert_eq!(c.env_get("D"), Some(""));
    assert_eq!(c.env_get("E"), Some("한국어"));
    assert_eq!(c.env_get("F"), Some("G H"));
}

#[test]
fn escape_directive_changes_the_escape_character() {
    let p = plan("# escape=`\nFROM scratch\nENV A=C:\\dir B=x`$y\n", &[]);
    let c = &last(&p).config;
    assert_eq!(c.env_get("A"), Some("C:\\dir"));
    assert_eq!(c.env_get("B"), Some("x$y"));
}

// ---------- where expansion applies ----------

#[test]
fn command_text_is_never_expanded() {
    let p = plan(
        "FROM scratch\nENV X=1\nRUN echo $X ${X} \"$f\"\nCMD echo $X\nHEALTHCHECK CMD test $X\nENTRYPOINT [\"echo\", \"$X\"]\n",
        &[],
    );
    assert_eq!(
        the_run(&p).argv,
        vec!["/bin/sh", "-c", "echo $X ${X} \"$f\""]
    );
    let c = &last(&p).config;
    assert_eq!(c.entrypoint.as_deref().unwrap(), ["echo", "$X"]);
    // CMD came before ENTRYPOINT in this stage, so it stays
    assert_eq!(c.cmd.as_deref().unwrap(), ["/bin/sh", "-c", "echo $X"]);
    assert_eq!(
        c.healthcheck.as_ref().unwrap().test,
        ["CMD-SHELL", "test $X"]
    );
}

#[test]
fn listed_instructions_are_expanded() {
    let p = plan(
        "FROM scratch\nARG N=x\nLABEL l-$N=v-$N\nUSER u$N\nWORKDIR /w$N\nEXPOSE 8$N 80\nVOLUME /v$N [\"ignored\"]\nSTOPSIGNAL SIG${N:+TERM}\nCOPY --chown=$N:$N --chmod=0${N:+644} --exclude=*.$N s$N d$N/\nADD --checksum=sha256:$N http://h/$N /a$N\n",
        &[("N", "1")],
    );
    let s = last(&p);
    let c = &s.config;
    assert_eq!(c.labels.get("l-1").map(String::as_str), Some("v-1"));
    assert_eq!(c.user, "u1");
    assert_eq!(c.working_dir, "/w1");
    assert_eq!(c.exposed_ports, vec!["80/tcp", "81/tcp"]);
    assert!(c.volumes.contains(&"/v1".to_string()));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
    let copy = s
        .steps
        .iter()
        .find_map(|st| match &st.op {
            Op::Copy(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(copy.sources, vec![CopySource::Path("s1".into())]);
    assert_eq!(copy.dest, "/w1/d1/");
    assert_eq!(copy.chown.as_deref(), Some("1:1"));
    assert_eq!(copy.chmod.as_deref(), Some("0644"));
    assert_eq!(copy.exclude, vec!["*.1"]);
    let add = s
        .steps
        .iter()
        .find_map(|st| match &st.op {
            Op::Add(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(add.sources, vec![CopySource::Path("http://h/1".into())]);
    assert_eq!(add.checksum.as_deref(), Some("sha256:1"));
    assert_eq!(add.dest, "/a1");
}

#[test]
fn expansion_errors_name_the_line() {
    let e = plan_err(
        "FROM scratch\nENV A=1\nENV B=\"${A:?must be set}\" C=\"${NOPE:?is required}\"\n",
        &[],
    );
    assert_eq!(e.line(), Some(3));
    assert!(e.to_string().contains("NOPE: is required"), "{e}");
    let e = plan_err("FROM scratch\n\nLABEL a=${b\n", &[]);
    assert_eq!(e.line(), Some(3));
}

#[test]
fn run_mount_values_are_expanded_and_targets_made_absolute() {
    let p = plan(
        "FROM busybox AS dep\nFROM busybox\nARG C=go\nWORKDIR /src\nRUN --mount=type=cache,id=$C-cache,target=.cache/$C,uid=1${C:+0},mode=0700 --mount=type=bind,from=dep,source=/out,target=/in --mount=type=secret,id=tok --mount=type=tmpfs,target=/t,size=1m --mount=type=ssh make\n",
        &[],
    );
    let r = the_run(&p);
    assert_eq!(
        r.mounts[0],
        RunMount::Cache {
            target: "/src/.cache/go".into(),
            id: "go-cache".into(),
            sharing: "shared".into(),
            from: None,
            source: None,
            readonly: false,
            mode: 0o700,
            uid: 10,
            gid: 0,
        }
    );
    assert!(
        matches!(&r.mounts[1], RunMount::Bind { target, source, from: Some(FromRef::Stage(0)), readonly: true } if target == "/in" && source == "/out")
    );
    assert!(
        matches!(&r.mounts[2], RunMount::Secret { id, target: Some(t), mode: 0o400, .. } if id == "tok" && t == "/run/secrets/tok")
    );
    assert!(matches!(
        &r.mounts[3],
        RunMount::Tmpfs {
            size: Some(1_048_576),
            ..
        }
    ));
    assert!(
        matches!(&r.mounts[4], RunMount::Ssh { id, target, .. } if id == "default" && target == "/run/buildkit/ssh_agent.0")
    );
    assert_eq!(last(&p).depends_on, vec![0]);
}

// ---------- RUN environment ----------

#[test]
fn run_env_is_env_plus_args_in_scope_and_args_stay_out_of_the_image() {
    let p = plan("FROM busybox\nARG A=1\nENV B=2\nARG C\nRUN x\n", &[]);
    let r = the_run(&p);
    assert_eq!(r.env, vec!["PATH=/bin:/usr/bin", "A=1", "B=2"]);
    assert_eq!(last(&p).config.env, vec!["PATH=/bin:/usr/bin", "B=2"]);
    assert_eq!(r.workdir, "/");
    assert_eq!(r.user, "");
    assert_eq!(r.network, "default");
    assert_eq!(r.security, "sandbox");
}

#[test]
fn run_history_lists_the_args_like_buildkit() {
    let p = plan("FROM scratch\nARG A=1 B\nRUN echo hi\n", &[]);
    let s = last(&p);
    let step = s.steps.iter().find(|s| matches!(s.op, Op::Run(_))).unwrap();
    assert_eq!(
        step.created_by,
        "RUN |2 A=1 B= /bin/sh -c echo hi # buildkit"
    );
    assert!(!step.empty_layer);
}

#[test]
fn run_network_and_security_flags() {
    let p = plan(
        "FROM scratch\nRUN --network=none --security=insecure x\n",
        &[],
    );
    let r = the_run(&p);
    assert_eq!(r.network, "none");
    assert_eq!(r.security, "insecure");
}

// ---------- predefined and proxy args ----------

#[test]
fn predefined_platform_args() {
    let mut options = opts(&[]);
    options.platform = Some(remfile_plan::Platform::parse("linux/arm/v7").unwrap());
    let p = plan_with(
        "FROM --platform=$BUILDPLATFORM busybox AS b\nARG TARGETPLATFORM TARGETARCH TARGETVARIANT BUILDOS BUILDARCH TARGETSTAGE\nRUN x\nFROM busybox:$TARGETARCH\nCOPY --from=b /a /a\nRUN y\n",
        &options,
    )
    .unwrap();
    assert_eq!(p.platform, "linux/arm/v7");
    assert_eq!(p.build_platform, "linux/amd64");
    let builder = stage(&p, 0);
    assert_eq!(builder.platform, "linux/amd64");
    let r = &runs(builder)[0];
    assert_eq!(get(&r.env, "TARGETPLATFORM"), Some("linux/arm/v7"));
    assert_eq!(get(&r.env, "TARGETARCH"), Some("arm"));
    assert_eq!(get(&r.env, "TARGETVARIANT"), Some("v7"));
    assert_eq!(get(&r.env, "BUILDOS"), Some("linux"));
    assert_eq!(get(&r.env, "BUILDARCH"), Some("amd64"));
    assert_eq!(get(&r.env, "TARGETSTAGE"), Some("1"));
    let target = stage(&p, 1);
    assert_eq!(target.platform, "linux/arm/v7");
    assert!(matches!(&target.base, Base::Image { original, .. } if original == "busybox:arm"));
    // not declared in stage 1: not in its environment
    assert_eq!(get(&runs(target)[0].env, "TARGETARCH"), None);
}

#[test]
fn target_variant_is_set_but_empty_without_variant() {
    let p = plan(
        "FROM scratch\nARG TARGETVARIANT\nENV V=${TARGETVARIANT-unset}\n",
        &[],
    );
    assert_eq!(last(&p).config.env_get("V"), Some(""));
}

#[test]
fn proxy_args_need_no_arg_and_stay_out_of_cache_and_image() {
    let p = plan(
        "FROM scratch\nRUN x\n",
        &[("HTTP_PROXY", "http://p:3128"), ("no_proxy", "local")],
    );
    let r = the_run(&p);
    assert_eq!(get(&r.env, "HTTP_PROXY"), None);
    assert_eq!(
        r.proxy_env,
        vec![
            "HTTP_PROXY=http://p:3128",
            "http_proxy=http://p:3128",
            "NO_PROXY=local",
            "no_proxy=local"
        ]
    );
    let step = last(&p)
        .steps
        .iter()
        .find(|s| matches!(s.op, Op::Run(_)))
        .unwrap();
    assert!(!step.definition.to_string().contains("p:3128"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(last(&p).config.env_get("HTTP_PROXY").is_none());
}

#[test]
fn declared_proxy_arg_is_part_of_env_and_definition() {
    let p = plan(
        "FROM scratch\nARG HTTP_PROXY\nRUN x\n",
        &[("HTTP_PROXY", "http://p")],
    );
    let r = the_run(&p);
    assert_eq!(get(&r.env, "HTTP_PROXY"), Some("http://p"));
    // the other spelling still comes from BuildKit's proxy env (Docker 20.10 sets both)
    assert_eq!(r.proxy_env, ["http_proxy=http://p"]);
    let step = last(&p)
        .steps
        .iter()
        .find(|s| matches!(s.op, Op::Run(_)))
        .unwrap();
    assert!(step.definition.to_string().contains("http://p"));
}

// ---------- stages ----------

#[test]
fn stages_are_numbered_by_from_only() {
    let p = plan(
        "ARG X=1\nARG Y=2\nFROM busybox AS a\nRUN a\nFROM busybox\nCOPY --from=0 /a /b\n",
        &[],
    );
    let s = last(&p);
    assert_eq!(s.index, 1);
    let Op::Copy(c) = &s.steps[0].op else {
        panic!()
    };
    assert_eq!(c.from, Some(FromRef::Stage(0)));
    assert_eq!(stage(&p, 0).name.as_deref(), Some("a"));
}

#[test]
fn stage_names_are_case_insensitive() {
    let mut o = opts(&[]);
    o.target = Some("FINAL".into());
    let p = plan_with(
        "FROM busybox AS Builder\nFROM builder AS final\nCOPY --from=BUILDER /a /b\nFROM busybox\n",
        &o,
    )
    .unwrap();
    assert_eq!(p.target, 1);
    assert_eq!(stage(&p, 0).name.as_deref(), Some("builder"));
    assert_eq!(stage(&p, 1).base, Base::Stage { stage: 0 });
    assert_eq!(p.stages.len(), 2);
}

#[test]
fn copy_from_an_image_is_an_external_dependency() {
    let p = plan("FROM scratch\nCOPY --from=nginx:1.25 /etc/nginx /n\n", &[]);
    let s = last(&p);
    assert!(s.depends_on.is_empty());
    let Op::Copy(c) = &s.steps[0].op else {
        panic!()
    };
    assert_eq!(
        c.from,
        Some(FromRef::Image("docker.io/library/nginx:1.25".into()))
    );
    assert_eq!(p.images, vec!["docker.io/library/nginx:1.25"]);
}

#[test]
fn out_of_order_copy_from_orders_the_stages() {
    let p = plan(
        "FROM busybox AS first\nCOPY --from=second /x /x\nFROM busybox AS second\nRUN make\n",
        &[("UNUSED_BUT_OK", "")],
    );
    let mut o = opts(&[]);
    o.target = Some("first".into());
    let p2 = plan_with(
        "FROM busybox AS first\nCOPY --from=second /x /x\nFROM busybox AS second\nRUN make\n",
        &o,
    )
    .unwrap();
    assert_eq!(p.stages.len(), 1, "the last stage does not need the first");
    assert_eq!(
        p2.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert_eq!(stage(&p2, 0).depends_on, vec![1]);
}

#[test]
fn target_prunes_and_independent_stages_have_no_edge() {
    let src = "FROM busybox AS a\nRUN a\nFROM busybox AS b\nRUN b\nFROM busybox AS unused\nRUN u\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    let p = plan(src, &[]);
    assert_eq!(
        p.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 1, 3]
    );
    assert!(stage(&p, 0).depends_on.is_empty());
    assert!(stage(&p, 1).depends_on.is_empty());
    assert_eq!(stage(&p, 3).depends_on, vec![0, 1]);
    let mut o = opts(&[]);
    o.target = Some("b".into());
    let p = plan_with(src, &o).unwrap();
    assert_eq!(p.target, 1);
    assert_eq!(
        p.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn errors_in_pruned_stages_do_not_matter() {
    let p = plan(
        "FROM scratch AS bad\nENV A=${X:?boom}\nFROM scratch\nRUN ok\n",
        &[],
    );
    assert_eq!(p.stages.len(), 1);
}

#[test]
fn graph_errors() {
    let e = plan_err(
        "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n",
        &[],
    );
    assert!(matches!(e, PlanError::Cycle { .. }), "{e}");
    assert!(e.line().is_some());
    let e = plan_err("FROM busybox AS a\nCOPY --from=a /x /x\n", &[]);
    assert!(matches!(e, PlanError::Cycle { line: 2, .. }), "{e}");
    let e = plan_err("FROM busybox\nCOPY --from=0 /x /x\n", &[]);
    assert!(matches!(e, PlanError::Cycle { line: 2, .. }), "{e}");
    // indexes as Go's Atoi reads them: `+0`, `00`, `-0` are stage 0, `-1` no stage
    let p = plan(
        "FROM busybox AS z\nFROM busybox\nCOPY --from=+0 /x /a\nCOPY --from=00 /x /b\nCOPY --from=-0 /x /c\n",
        &[],
    );
    assert_eq!(last(&p).index, 1);
    let e = plan_err("FROM busybox\nFROM busybox\nCOPY --from=-1 /x /x\n", &[]);
    assert!(matches!(e, PlanError::StageIndex { line: 3, .. }), "{e}");
    let e = plan_err("FROM busybox\n\nCOPY --from=7 /x /x\n", &[]);
    assert_eq!(
        e,
        PlanError::StageIndex {
            line: 3,
            index: "7".into()
        }
    );
    let e = plan_err("FROM busybox AS a\nCOPY --from=$X /x /x\n", &[]);
    assert_eq!(e, PlanError::FromVariable { line: 2 });
    let e = plan_err("FROM busybox\nRUN --mount=type=tmpfs,target=/ x\n", &[]);
    assert_eq!(e.line(), Some(2));
    let e = plan_err("ARG B\nFROM $B\n", &[]);
    assert!(matches!(e, PlanError::EmptyBase { line: 2, .. }), "{e}");
    let e = plan_err("FROM --platform=nosuch busybox\n", &[]);
    assert!(matches!(e, PlanError::Platform { line: 1, .. }), "{e}");
    let e = plan_err("ENV A=1\nFROM busybox\n", &[]);
    assert!(matches!(e, PlanError::BeforeFrom { line: 1, .. }), "{e}");
    let e = plan_err("ARG A\n", &[]);
    assert_eq!(e, PlanError::NoStages);
    let e = plan_err("FROM Not/Valid\n", &[]);
    assert!(matches!(e, PlanError::Reference { line: 1, .. }), "{e}");
}

#[test]
fn duplicate_stage_names_warn_and_the_last_one_wins() {
    let p = plan(
        "FROM busybox AS a\nENV N=1\nFROM busybox AS A\nENV N=2\nFROM a\nRUN x\n",
        &[],
    );
    assert_eq!(last(&p).base, Base::Stage { stage: 1 });
    assert_eq!(get(&the_run(&p).env, "N"), Some("2"));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.line == Some(3) && w.message.contains("duplicate stage name"))
    );
}

#[test]
fn option_errors() {
    let mut o = opts(&[]);
    o.target = Some("nope".into());
    assert_eq!(
        plan_with("FROM scratch\n", &o).unwrap_err(),
        PlanError::UnknownTarget("nope".into())
    );
    let e = plan_err("FROM scratch\n", &[("", "x")]);
    assert!(matches!(e, PlanError::BuildArg(_)), "{e}");
    let e = plan_err("FROM scratch\n", &[("A B", "x")]);
    assert!(matches!(e, PlanError::BuildArg(_)), "{e}");
    assert!(PlanOptions::parse_build_arg("K=V=W").unwrap().1 == "V=W");
    assert!(PlanOptions::parse_build_arg("=V").is_err());
    assert!(PlanOptions::parse_build_arg("K").is_err());
}

// ---------- config semantics ----------

#[test]
fn workdir_is_relative_to_the_previous_one() {
    let p = plan(
        "FROM wd\nWORKDIR rel\nRUN a\nWORKDIR /a\nWORKDIR b\nWORKDIR ../c/./d/\nRUN b\n",
        &[],
    );
    let r = runs(last(&p));
    assert_eq!(r[0].workdir, "/base/rel");
    assert_eq!(r[0].user, "app");
    assert_eq!(r[1].workdir, "/a/c/d");
    let Op::Workdir(w) = &step_at(last(&p), 2).op else {
        panic!()
    };
    assert_eq!(w.path, "/base/rel");
    assert_eq!(w.user, "app");
    assert!(w.mkdir);
    let p = plan("FROM scratch\nWORKDIR /\n", &[]);
    assert!(last(&p).steps[0].empty_layer);
}

#[test]
fn expose_is_expanded_and_split() {
    let p = plan(
        "FROM scratch\nARG P=\"80 443\"\nEXPOSE $P 53/UDP 8000-8002/tcp\n",
        &[],
    );
    assert_eq!(
        last(&p).config.exposed_ports,
        vec![
            "443/tcp", "53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"
        ]
    );
    let e = plan_err("FROM scratch\nEXPOSE 80/icmp\n", &[]);
    assert_eq!(e.line(), Some(2));
}

#[test]
fn entrypoint_clears_the_inherited_cmd() {
    let p = plan("FROM busybox\nENTRYPOINT [\"x\"]\n", &[]);
    assert_eq!(last(&p).config.cmd, None);
    let p = plan("FROM busybox\nCMD [\"a\"]\nENTRYPOINT [\"x\"]\n", &[]);
    assert_eq!(last(&p).config.cmd.as_deref().unwrap(), ["a"]);
    let p = plan("FROM busybox\nENTRYPOINT [\"x\"]\nCMD [\"a\"]\n", &[]);
    assert_eq!(last(&p).config.cmd.as_deref().unwrap(), ["a"]);
    // a CMD of the base stage is inherited, and cleared by an ENTRYPOINT of the child
    let p = plan(
        "FROM busybox AS a\nCMD [\"c\"]\nFROM a\nENTRYPOINT [\"e\"]\n",
        &[],
    );
    assert_eq!(last(&p).config.cmd, None);
    let p = plan("FROM busybox AS a\nCMD [\"c\"]\nFROM a\nRUN x\n", &[]);
    assert_eq!(last(&p).config.cmd.as_deref().unwrap(), ["c"]);
}

#[test]
fn shell_wraps_later_shell_forms() {
    let p = plan(
        "FROM scratch\nRUN a\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN b\nRUN [\"exec\", \"form\"]\nCMD c\nENTRYPOINT e\n",
        &[],
    );
    let r = runs(last(&p));
    assert_eq!(r[0].argv, ["/bin/sh", "-c", "a"]);
    assert_eq!(r[1].argv, ["/bin/bash", "-eu", "-c", "b"]);
    assert!(r[1].shell_form);
    assert_eq!(r[2].argv, ["exec", "form"]);
    assert!(!r[2].shell_form);
    let c = &last(&p).config;
    assert_eq!(c.cmd.as_deref().unwrap(), ["/bin/bash", "-eu", "-c", "c"]);
    assert_eq!(
        c.entrypoint.as_deref().unwrap(),
        ["/bin/bash", "-eu", "-c", "e"]
    );
    assert_eq!(c.shell.as_deref().unwrap(), ["/bin/bash", "-eu", "-c"]);
}

#[test]
fn onbuild_triggers_of_the_base_run_after_from_and_are_not_inherited() {
    let p = plan(
        "FROM busybox AS helper\nFROM onb AS child\nENV AFTER=1\nFROM child\nRUN grandchild\n",
        &[],
    );
    let child = stage(&p, 1);
    let trig: Vec<_> = child.steps.iter().filter(|s| s.onbuild).collect();
    assert_eq!(trig.len(), 3);
    assert!(trig.iter().all(|s| s.line == 2));
    let Op::Run(r) = &child.steps[0].op else {
        panic!()
    };
    assert_eq!(r.argv, ["/bin/sh", "-c", "echo trig $T"]);
    assert_eq!(child.config.env_get("T"), Some("1"));
    // the trigger's COPY --from adds a dependency
    assert_eq!(child.depends_on, vec![0]);
    assert!(child.config.on_build.is_empty());
    assert!(!child.steps[3].onbuild);
    let g = stage(&p, 2);
    assert!(g.steps.iter().all(|s| !s.onbuild));
}

#[test]
fn onbuild_instructions_go_to_the_config_and_run_in_a_child_stage() {
    let p = plan(
        "FROM busybox AS base\nONBUILD RUN echo from-trigger\nFROM base\nRUN child\n",
        &[],
    );
    let base = stage(&p, 0);
    assert_eq!(base.config.on_build, vec!["RUN echo from-trigger"]);
    let child = last(&p);
    assert!(child.steps[0].onbuild);
    let r = runs(child);
    assert_eq!(r[0].argv, ["/bin/sh", "-c", "echo from-trigger"]);
    assert!(child.config.on_build.is_empty());
}

#[test]
fn unknown_base_config_is_a_warning() {
    let p = plan("FROM unknown/image:1\nRUN x\n", &[]);
    assert!(!last(&p).base_config_known);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.line == Some(1) && w.message.contains("unknown/image:1"))
    );
    assert!(plan("FROM busybox\n", &[]).stages[0].base_config_known);
    assert!(plan("FROM scratch\n", &[]).stages[0].base_config_known);
}

// ---------- heredocs ----------

#[test]
fn run_heredoc_body_goes_to_the_shell_unexpanded() {
    let p = plan("FROM scratch\nENV X=1\nRUN <<EOF\necho $X\nEOF\n", &[]);
    assert_eq!(the_run(&p).argv, ["/bin/sh", "-c", "echo $X\n"]);
}

#[test]
fn run_heredoc_with_shebang_is_run_as_a_file() {
    let p = plan(
        "FROM scratch\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n",
        &[],
    );
    let r = the_run(&p);
    assert_eq!(r.argv, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(r.heredocs.len(), 1);
    assert_eq!(r.heredocs[0].path, "/dev/pipes/EOF");
    assert_eq!(r.heredocs[0].data, "#!/usr/bin/env python3\nprint(1)\n");
    assert_eq!(r.heredocs[0].mode, 0o755);
}

#[test]
fn run_heredoc_as_stdin_of_a_command_is_reconstituted() {
    let p = plan("FROM scratch\nRUN cat <<EOF > /x\nhello $USER\nEOF\n", &[]);
    assert_eq!(
        the_run(&p).argv,
        ["/bin/sh", "-c", "cat <<EOF > /x\nhello $USER\nEOF"]
    );
}

#[test]
fn copy_heredoc_expands_only_with_an_unquoted_delimiter() {
    let p = plan(
        "FROM scratch\nARG V=1\nCOPY <<A <<'B' /dst/\nv=$V 'q'\nA\nv=$V\nB\n",
        &[],
    );
    let Op::Copy(c) = &last(&p).steps[1].op else {
        panic!()
    };
    let CopySource::Heredoc(a) = &c.sources[0] else {
        panic!()
    };
    let CopySource::Heredoc(b) = &c.sources[1] else {
        panic!()
    };
    assert_eq!(a.path, "A");
    assert_eq!(a.data, "v=1 'q'\n");
    assert_eq!(b.data, "v=$V\n");
}

// ---------- definitions ----------

#[test]
fn definition_holds_the_cache_relevant_content() {
    let d = |src: &str, args: &[(&str, &str)]| {
        let p = plan(src, args);
        let s = last(&p);
        s.steps.last().unwrap().definition.clone()
    };
    let base = d("FROM scratch\nARG A\nRUN x\n", &[("A", "1")]);
    assert_eq!(base, d("FROM scratch\nARG A\nRUN x\n", &[("A", "1")]));
    assert_ne!(base, d("FROM scratch\nARG A\nRUN x\n", &[("A", "2")]));
    assert_ne!(
        base,
        d("FROM scratch\nARG A\nUSER u\nRUN x\n", &[("A", "1")])
    );
    assert_ne!(
        base,
        d("FROM scratch\nARG A\nWORKDIR /w\nRUN x\n", &[("A", "1")])
    );
    assert_ne!(
        base,
        d(
            "FROM scratch\nARG A\nSHELL [\"/bin/bash\", \"-c\"]\nRUN x\n",
            &[("A", "1")]
        )
    );
    assert_ne!(
        base,
        d("FROM scratch\nARG A\nRUN --network=none x\n", &[("A", "1")])
    );
    // an undeclared proxy arg changes nothing
    assert_eq!(
        base,
        d(
            "FROM scratch\nARG A\nRUN x\n",
            &[("A", "1"), ("HTTPS_PROXY", "p")]
        )
    );
    assert_eq!(base["op"], "run");
    let copy = d("FROM scratch\nCOPY --chmod=644 a b\n", &[]);
    assert_eq!(copy["op"], "copy");
    assert_eq!(copy["chmod"], "644");
    assert_eq!(copy["dest"], "/b");
    assert_ne!(copy, d("FROM scratch\nCOPY --chmod=600 a b\n", &[]));
    let env = d("FROM scratch\nENV A=1\n", &[]);
    assert_eq!(
        env,
        serde_json::json!({"op": "config", "set": {"env": ["A=1"]}})
    );
}

#[test]
fn history_text_and_layers() {
    let p = plan(
        "FROM scratch\nENV A=1 B=2\nLABEL x=y\nCMD [\"a\", \"b c\"]\nUSER 1:1\nMAINTAINER me\nONBUILD RUN x\nCOPY a /a\n",
        &[],
    );
    let s = last(&p);
    let cb: Vec<(&str, bool)> = s
        .steps
        .iter()
        .map(|st| (st.created_by.as_str(), st.empty_layer))
        .collect();
    assert_eq!(
        cb,
        vec![
            ("ENV A=1 B=2", true),
            ("LABEL x=y", true),
            ("CMD [\"a\" \"b c\"]", true),
            ("USER 1:1", true),
            ("MAINTAINER me", true),
            ("", true),
            ("COPY a /a # buildkit", false),
        ]
    );
    assert_eq!(s.config.author.as_deref(), Some("me"));
}

// ---------- conformance with Docker 20.10's BuildKit (pelagos-build/scripts/compare-buildkit) ----------

#[test]
fn arg_history_shows_the_declaration_not_the_value_taken() {
    let src = "ARG G=g\nFROM scratch\nARG G\nARG A=def B=${A}x C\nRUN x\n";
    let p = plan(src, &[("A", "cli"), ("C", "c")]);
    let s = last(&p);
    assert_eq!(step_at(s, 3).created_by, "ARG G");
    // B is expanded before A of the same line is declared (checked with Docker 20.10)
    assert_eq!(step_at(s, 4).created_by, "ARG A=def B=x C");
    assert_eq!(get(&the_run(&p).env, "A"), Some("cli"));
    assert_eq!(get(&the_run(&p).env, "G"), Some("g"));
}

#[test]
fn healthcheck_history_is_go_quoted_config() {
    let src = "FROM scratch\nHEALTHCHECK --interval=5s --retries=4 CMD [\"echo\", \"o\\\"k\"]\n\
               HEALTHCHECK CMD echo shell\nHEALTHCHECK NONE\nHEALTHCHECK --start-interval=2s CMD true\n";
    let p = plan(src, &[]);
    let s = last(&p);
    assert_eq!(
        step_at(s, 2).created_by,
        r#"HEALTHCHECK &{["CMD" "echo" "o\"k"] "5s" "0s" "0s" '\x04'}"#
    );
    assert_eq!(
        step_at(s, 3).created_by,
        r#"HEALTHCHECK &{["CMD-SHELL" "echo shell"] "0s" "0s" "0s" '\x00'}"#
    );
    assert_eq!(
        step_at(s, 4).created_by,
        r#"HEALTHCHECK &{["NONE"] "0s" "0s" "0s" '\x00'}"#
    );
    assert_eq!(
        step_at(s, 5).created_by,
        r#"HEALTHCHECK &{["CMD-SHELL" "true"] "0s" "0s" "0s" "2s" '\x00'}"#
    );
}

#[test]
fn scratch_has_buildkit_empty_image_workdir() {
    let p = plan("FROM scratch\nENV X=1\n", &[]);
    assert_eq!(last(&p).config.working_dir, "/");
}

#[test]
fn absolute_workdir_is_kept_as_written_relative_is_joined_and_cleaned() {
    let p = plan(
        "FROM scratch\nWORKDIR /app/\nWORKDIR ../up/x/\nWORKDIR /a/../b\n",
        &[],
    );
    let s = last(&p);
    assert_eq!(step_at(s, 2).created_by, "WORKDIR /app/");
    assert_eq!(step_at(s, 3).created_by, "WORKDIR /up/x");
    assert_eq!(step_at(s, 4).created_by, "WORKDIR /a/../b");
    assert_eq!(s.config.working_dir, "/a/../b");
    let Op::Workdir(w) = &step_at(s, 4).op else {
        panic!("not a workdir step")
    };
    assert_eq!(w.path, "/b", "the directory made is the cleaned path");
}

#[test]
fn run_history_lists_only_the_stages_own_args() {
    let p = plan(
        "FROM scratch AS a\nARG V=one\nRUN x\nFROM a\nRUN y\nARG W=2\nRUN z\n",
        &[],
    );
    let s = last(&p);
    assert_eq!(step_at(s, 5).created_by, "RUN /bin/sh -c y # buildkit");
    assert_eq!(
        step_at(s, 7).created_by,
        "RUN |1 W=2 /bin/sh -c z # buildkit"
    );
    assert_eq!(
        get(&runs(s)[0].env, "V"),
        Some("one"),
        "the value still reaches the env"
    );
}

#[test]
fn proxy_build_args_set_both_spellings() {
    let p = plan(
        "FROM scratch\nRUN x\n",
        &[("https_proxy", "http://s"), ("NO_PROXY", "l")],
    );
    let mut pe = the_run(&p).proxy_env.clone();
    pe.sort();
    assert_eq!(
        pe,
        [
            "HTTPS_PROXY=http://s",
            "NO_PROXY=l",
            "https_proxy=http://s",
            "no_proxy=l"
        ]
    );
}

#[test]
fn run_hostname_is_buildkits_or_the_sandbox_hostname_arg() {
    let p = plan("FROM scratch\nRUN x\n", &[]);
    assert_eq!(the_run(&p).hostname, "buildkitsandbox");
    let p2 = plan(
        "FROM scratch\nRUN x\n",
        &[("BUILDKIT_SANDBOX_HOSTNAME", "box")],
    );
    assert_eq!(the_run(&p2).hostname, "box");
    let def = |p: &remfile_plan::Plan| last(p).steps[0].definition.clone();
    assert_ne!(def(&p), def(&p2), "the host name is part of the step");
    assert!(
        !p2.warnings
            .iter()
            .any(|w| w.message.contains("BUILDKIT_SANDBOX")),
        "{:?}",
        p2.warnings
    );
}

#[test]
fn run_history_lists_every_arg_declaration_with_its_current_value() {
    let p = plan("FROM scratch\nARG A=1\nARG B=b\nARG A=2\nRUN x\n", &[]);
    assert_eq!(
        step_at(last(&p), 5).created_by,
        "RUN |3 A=2 B=b A=2 /bin/sh -c x # buildkit"
    );
}

#[test]
fn json_form_ignores_text_after_the_array_as_buildkit_does() {
    // BuildKit decodes the first JSON value and ignores the rest (checked with Docker 20.10)
    let p = plan(
        "FROM scratch\nCMD [\"a\"] extra\nENTRYPOINT [\"e\", \"f\"] [\"g\"]\n\
         HEALTHCHECK CMD [\"h\"] x\nRUN [\"r\", \"1\"] > /out\nRUN [ -f x ] && echo y\n",
        &[],
    );
    let s = last(&p);
    // ENTRYPOINT after CMD in the same stage keeps the CMD
    assert_eq!(s.config.cmd.as_deref(), Some(&["a".to_string()][..]));
    assert_eq!(
        s.config.entrypoint.as_deref(),
        Some(&["e".to_string(), "f".to_string()][..])
    );
    assert_eq!(s.config.healthcheck.as_ref().unwrap().test, ["CMD", "h"]);
    let r = runs(s);
    assert_eq!(r[0].argv, ["r", "1"]);
    assert_eq!(
        r[1].argv,
        ["/bin/sh", "-c", "[ -f x ] && echo y"],
        "not JSON: shell form"
    );
}

#[test]
fn pre_from_arg_without_value_unsets_a_predefined_arg() {
    // Docker 20.10: the global declaration shadows the automatic value with "unset"
    let src = "ARG TARGETARCH\nARG BUILDOS=b\nFROM busybox:x${TARGETARCH}\nARG TARGETARCH\nARG BUILDOS\nRUN x\n";
    let p = plan(src, &[]);
    assert!(matches!(&last(&p).base, Base::Image { original, .. } if original == "busybox:x"));
    assert_eq!(get(&the_run(&p).env, "TARGETARCH"), None);
    assert_eq!(get(&the_run(&p).env, "BUILDOS"), Some("b"));
    // a --build-arg still sets it
    let p = plan(src, &[("TARGETARCH", "arm64")]);
    assert_eq!(get(&the_run(&p).env, "TARGETARCH"), Some("arm64"));
    // without the global declaration the stage's ARG gets the automatic value
    let p = plan("FROM busybox\nARG TARGETARCH\nRUN x\n", &[]);
    assert_eq!(get(&the_run(&p).env, "TARGETARCH"), Some("amd64"));
}

#[test]
fn from_platform_on_scratch_gives_the_target_platform() {
    // BuildKit's empty image has the target platform (Docker 20.10: config arch amd64)
    let p = plan(
        "FROM --platform=linux/arm64 scratch AS a\nCOPY f /\nFROM a\n",
        &[],
    );
    assert_eq!(stage(&p, 0).platform, "linux/amd64");
    assert_eq!(last(&p).platform, "linux/amd64");
    let p = plan("FROM --platform=linux/arm64 busybox\n", &[]);
    assert_eq!(
        last(&p).platform,
        "linux/arm64",
        "an image keeps its --platform"
    );
    // an invalid platform is still an error
    let e = plan_err("FROM --platform=nosuch scratch\n", &[]);
    assert!(e.to_string().contains("nosuch"), "{e}");
}
