//! Shared helpers: parse + plan with a fixed platform and a small set of base configs.

use std::collections::BTreeMap;

use remfile_plan::{ImageConfig, Op, Plan, PlanError, PlanOptions, Platform, RunStep, Stage, Step};

/// The base configs the tests know.
pub fn bases() -> BTreeMap<String, ImageConfig> {
    let mut m = BTreeMap::new();
    m.insert(
        "docker.io/library/busybox:latest".to_string(),
        ImageConfig::from_oci_json(
            r#"{"Env":["PATH=/bin:/usr/bin"],"Cmd":["sh"],"Labels":{"base":"yes"}}"#,
        )
        .unwrap(),
    );
    m.insert(
        "docker.io/library/wd:latest".to_string(),
        ImageConfig::from_oci_json(r#"{"Env":["PATH=/bin"],"WorkingDir":"/base","User":"app"}"#)
            .unwrap(),
    );
    m.insert(
        "docker.io/library/onb:latest".to_string(),
        ImageConfig::from_oci_json(
            r#"{"Env":["PATH=/bin"],"OnBuild":["RUN echo trig $T","ENV T=1","COPY --from=helper /h /h"]}"#,
        )
        .unwrap(),
    );
    m
}

pub fn opts(args: &[(&str, &str)]) -> PlanOptions {
    PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        target: None,
        platform: Some(Platform::parse("linux/amd64").unwrap()),
        build_platform: Some(Platform::parse("linux/amd64").unwrap()),
    }
}

pub fn plan_with(src: &str, o: &PlanOptions) -> Result<Plan, PlanError> {
    let ast = remfile_parse::parse(src).unwrap_or_else(|e| panic!("parse failed: {e}\n{src}"));
    remfile_plan::plan(&ast, o, &bases())
}

pub fn plan(src: &str, args: &[(&str, &str)]) -> Plan {
    plan_with(src, &opts(args)).unwrap_or_else(|e| panic!("plan failed: {e}\n{src}"))
}

pub fn plan_err(src: &str, args: &[(&str, &str)]) -> PlanError {
    match plan_with(src, &opts(args)) {
        Ok(p) => panic!(
            "expected an error, got a plan with {} stages",
            p.stages.len()
        ),
        Err(e) => e,
    }
}

/// The stage with this index.
pub fn stage(p: &Plan, index: usize) -> &Stage {
    p.stages
        .iter()
        .find(|s| s.index == index)
        .unwrap_or_else(|| panic!("no stage {index}"))
}

/// The target stage.
pub fn last(p: &Plan) -> &Stage {
    stage(p, p.target)
}

/// The RUN steps of a stage.
pub fn runs(s: &Stage) -> Vec<&RunStep> {
    s.steps
        .iter()
        .filter_map(|st| match &st.op {
            Op::Run(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// The only RUN of the target stage.
pub fn the_run(p: &Plan) -> &RunStep {
    let r = runs(last(p));
    assert_eq!(r.len(), 1, "expected one RUN");
    r[0]
}

/// The value of `key` in a `K=V` list.
pub fn get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().find_map(|e| {
        let (k, v) = e.split_once('=')?;
        (k == key).then_some(v)
    })
}

pub fn step_at(s: &Stage, line: u32) -> &Step {
    s.steps
        .iter()
        .find(|st| st.line == line && !st.onbuild)
        .unwrap_or_else(|| panic!("no step at line {line}"))
}
