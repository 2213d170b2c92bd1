//! Property tests: no input makes the planner panic.

use proptest::prelude::*;

use crate::helpers::{opts, plan_with};

const LINES: &[&str] = &[
    "FROM busybox",
    "FROM scratch AS a",
    "FROM a AS b",
    "FROM onb",
    "FROM $BASE",
    "FROM --platform=$BUILDPLATFORM busybox AS c",
    "ARG BASE=busybox",
    "ARG X",
    "ARG Y=${X:-d}",
    "ENV A=1 B=$A",
    "ENV P=${P:+x}",
    "COPY --from=a /x /y",
    "COPY --from=b . .",
    "COPY --from=0 /x /y",
    "COPY --from=nginx /x /y",
    "RUN echo $A",
    "RUN --mount=type=cache,target=$A x",
    "RUN --mount=from=c,target=/m x",
    "WORKDIR ${A}/w",
    "WORKDIR ../..",
    "EXPOSE $A 80/udp",
    "USER ${X:-1}",
    "ONBUILD RUN y",
    "ENTRYPOINT e",
    "CMD [\"c\"]",
    "SHELL [\"/bin/bash\", \"-c\"]",
    "LABEL k=${Y}",
    "VOLUME /v",
    "STOPSIGNAL 9",
    "COPY <<E /f\n$A\nE",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_remfiles_plan_or_error(
        lines in proptest::collection::vec(proptest::sample::select(LINES), 1..12),
        target in proptest::option::of(proptest::sample::select(&["a", "b", "c", "zz"][..])),
        arg in "[A-Z]{1,3}",
        value in ".{0,12}",
    ) {
        let src = lines.join("\n") + "\n";
        if let Ok(ast) = remfile_parse::parse(&src) {
            let mut o = opts(&[]);
            o.target = target.map(str::to_string);
            o.build_args.push((arg, value));
            let _ = remfile_plan::plan(&ast, &o, &crate::helpers::bases());
        }
    }

    #[test]
    fn random_words_in_instructions_never_panic(word in ".{0,30}") {
        for tmpl in ["FROM {}", "FROM busybox\nENV A={}", "FROM busybox\nCOPY --from={} a b",
                     "FROM busybox\nEXPOSE {}", "FROM busybox\nWORKDIR {}", "FROM busybox\nLABEL a={}",
                     "ARG A={}\nFROM busybox:$A", "FROM busybox\nSTOPSIGNAL {}",
                     "FROM busybox\nRUN --mount=type=tmpfs,target=/t,size={} x"] {
            let src = tmpl.replace("{}", &word);
            if let Ok(ast) = remfile_parse::parse(&src) {
                let _ = plan_with(&src, &opts(&[]));
                let _ = remfile_plan::plan(&ast, &opts(&[]), &remfile_plan::NoBases);
            }
        }
    }
}
