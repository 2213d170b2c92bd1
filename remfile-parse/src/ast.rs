//! The version-1 AST: typed instructions with spans, raw (unexpanded) words.
//!
//! Every type here is `Serialize + Deserialize`; the JSON produced by
//! `remfile-parse` deserialises back into exactly these types, which is how
//! `remfile-plan` consumes it. Changes are additive only.

use serde::{Deserialize, Serialize};

/// The AST format version this crate produces.
pub const AST_VERSION: u32 = 1;

/// A whole parsed Remfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remfile {
    /// Always [`AST_VERSION`] (1).
    pub version: u32,
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// Instructions in file order (comments and blank lines are dropped).
    pub instructions: Vec<Instruction>,
}

/// Parser directives (`# escape=`, `# syntax=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directives {
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# syntax=` value, if given (recorded, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syntax: Option<String>,
    /// `# check=` value, if given (recorded, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// Source position of an instruction. Lines and columns are 1-based;
/// columns count Unicode scalar values (characters), not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Line of the instruction keyword.
    pub line: u32,
    /// Column of the first character of the instruction keyword.
    pub col: u32,
    /// Last line of the instruction (continuations and heredoc terminators included).
    pub end_line: u32,
    /// Column just past the last character on `end_line` (exclusive end).
    pub end_col: u32,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// Where the instruction is in the source.
    pub span: Span,
    /// The exact source text of the instruction, byte for byte: from the
    /// keyword to the end of its last line (continuation lines, comment lines
    /// inside it, heredoc bodies and terminators included; inner line endings
    /// as in the file, so `\r\n` stays in CRLF files).
    pub original: String,
    /// The typed instruction; serialised inline with a `"kind"` tag.
    #[serde(flatten)]
    pub kind: Kind,
}

/// The instruction-specific part, tagged by `"kind"` in JSON
/// (`"from"`, `"run"`, `"cmd"`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// `FROM [--platform=P] image [AS name]`
    From {
        /// Image reference or stage name, raw (variables unexpanded).
        image: String,
        /// `--platform` value, raw.
        #[serde(default)]
        platform: Option<String>,
        /// Stage name after `AS`, lowercased (stage names are case-insensitive).
        #[serde(default)]
        alias: Option<String>,
    },
    /// `RUN [flags] command`
    Run {
        /// Shell or exec form. Never expanded by the builder.
        command: Command,
        /// Heredocs in the order they appear on the line.
        #[serde(default)]
        heredocs: Vec<Heredoc>,
        /// `--mount` flags in order.
        #[serde(default)]
        mounts: Vec<Mount>,
        /// `--network`, if given.
        #[serde(default)]
        network: Option<Network>,
        /// `--security`, if given.
        #[serde(default)]
        security: Option<Security>,
    },
    /// `CMD command`
    Cmd {
        /// Shell or exec form.
        command: Command,
    },
    /// `ENTRYPOINT command`
    Entrypoint {
        /// Shell or exec form.
        command: Command,
    },
    /// `SHELL ["exe", "arg"...]` (JSON form only)
    Shell {
        /// The shell argv.
        shell: Vec<String>,
    },
    /// `ENV K=V ...` or legacy `ENV K V`
    Env {
        /// Pairs in order; keys and values raw (quotes and escapes kept).
        pairs: Vec<KeyValue>,
        /// True for the legacy `ENV key value` form (one pair; the value is
        /// the rest of the line).
        #[serde(default)]
        legacy: bool,
    },
    /// `ARG name[=default] ...`
    Arg {
        /// Declarations in order.
        args: Vec<ArgDecl>,
    },
    /// `LABEL k=v ...` (or legacy `LABEL k v`)
    Label {
        /// Pairs in order; keys and values raw (quotes and escapes kept).
        pairs: Vec<KeyValue>,
        /// True for the legacy `LABEL key value` form.
        #[serde(default)]
        legacy: bool,
    },
    /// `EXPOSE port[/proto] ...`
    Expose {
        /// Whitespace-separated words, raw (may contain variables and ranges).
        ports: Vec<String>,
    },
    /// `COPY [flags] src... dest`
    Copy {
        /// Sources in order: paths (raw) or heredoc references.
        sources: Vec<Source>,
        /// Destination, raw.
        dest: String,
        /// True when the JSON form `["src", "dest"]` was used.
        #[serde(default)]
        json: bool,
        /// Flags.
        flags: CopyFlags,
        /// Heredocs whose bodies are sources (referenced by name from `sources`).
        #[serde(default)]
        heredocs: Vec<Heredoc>,
    },
    /// `ADD [flags] src... dest`
    Add {
        /// Sources in order: paths/URLs (raw) or heredoc references.
        sources: Vec<Source>,
        /// Destination, raw.
        dest: String,
        /// True when the JSON form was used.
        #[serde(default)]
        json: bool,
        /// Flags.
        flags: AddFlags,
        /// Heredocs whose bodies are sources.
        #[serde(default)]
        heredocs: Vec<Heredoc>,
    },
    /// `WORKDIR path`
    Workdir {
        /// The path, raw (the rest of the line).
        path: String,
    },
    /// `USER user[:group]`
    User {
        /// The user, raw (the rest of the line).
        user: String,
    },
    /// `VOLUME ["/a", "/b"]` or `VOLUME /a /b`
    Volume {
        /// Paths, raw.
        paths: Vec<String>,
        /// True when the JSON form was used.
        #[serde(default)]
        json: bool,
    },
    /// `STOPSIGNAL signal`
    Stopsignal {
        /// The signal, raw.
        signal: String,
    },
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`
    Healthcheck {
        /// The check.
        health: Health,
    },
    /// `ONBUILD instruction`
    Onbuild {
        /// The trigger text as BuildKit stores it in the image config
        /// (the line without `ONBUILD `, plus heredoc bodies and terminators).
        trigger: String,
        /// The parsed trigger instruction (never ONBUILD, FROM or MAINTAINER).
        instruction: Box<Instruction>,
    },
    /// `MAINTAINER name` (deprecated, kept)
    Maintainer {
        /// The rest of the line.
        name: String,
    },
}

/// Shell form or exec (JSON array) form of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Shell form: the text after the flags, continuations joined, raw.
    Shell(String),
    /// Exec form: the JSON array's strings.
    Exec(Vec<String>),
}

/// A heredoc attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The body, every line with its line ending exactly as in the file
    /// (`\n`, or `\r\n` in CRLF files, as BuildKit keeps it); with
    /// `strip_tabs`, leading tabs are already removed from every line.
    pub body: String,
    /// False when the delimiter was quoted (`<<'EOF'`, `<<"EOF"`): the body
    /// must not be variable-expanded.
    pub expand: bool,
    /// True for `<<-EOF`.
    pub strip_tabs: bool,
    /// File descriptor prefix (`3<<EOF`); 0 when absent.
    #[serde(default)]
    pub fd: u32,
}

/// `KEY=value` pair of ENV or LABEL, both raw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Key, raw.
    pub key: String,
    /// Value, raw (quotes and escapes kept for the planner's shell lexer).
    pub value: String,
}

/// One `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgDecl {
    /// Name, raw.
    pub name: String,
    /// Default value, raw; `None` when declared without `=`.
    #[serde(default)]
    pub default: Option<String>,
}

/// A COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A path, glob or URL, raw.
    Path(String),
    /// The heredoc with this name (see the instruction's `heredocs`).
    Heredoc(String),
}

/// Flags of COPY. String values had one level of quotes removed (as
/// BuildKit's flag splitter does) but are otherwise raw: the planner expands them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CopyFlags {
    /// `--from=stage|index|image`
    pub from: Option<String>,
    /// `--chown=user[:group]`
    pub chown: Option<String>,
    /// `--chmod=mode` (octal or symbolic; validated when free of variables)
    pub chmod: Option<String>,
    /// `--link`
    pub link: bool,
    /// `--parents`
    pub parents: bool,
    /// `--exclude=pattern`, repeatable
    pub exclude: Vec<String>,
}

/// Flags of ADD (see [`CopyFlags`] for how values are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddFlags {
    /// `--chown=user[:group]`
    pub chown: Option<String>,
    /// `--chmod=mode`
    pub chmod: Option<String>,
    /// `--link`
    pub link: bool,
    /// `--exclude=pattern`, repeatable
    pub exclude: Vec<String>,
    /// `--checksum=sha256:...`
    pub checksum: Option<String>,
    /// `--keep-git-dir`
    pub keep_git_dir: bool,
    /// `--unpack[=bool]`; `None` when not given (the default depends on the source).
    pub unpack: Option<bool>,
}

/// `RUN --network` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// `default`
    Default,
    /// `none`
    None,
    /// `host`
    Host,
}

/// `RUN --security` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// `sandbox`
    Sandbox,
    /// `insecure`
    Insecure,
}

/// A `RUN --mount`, tagged by `"type"`. String values are raw (the planner
/// expands them); numeric ones (`mode`, `uid`, `gid`, `size`) are validated
/// when they contain no `$`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mount {
    /// `type=bind` (the default type)
    Bind {
        /// `target`/`dst`/`destination` (required)
        target: String,
        /// `source`/`src`
        #[serde(default)]
        source: Option<String>,
        /// `from`
        #[serde(default)]
        from: Option<String>,
        /// Read-only (default true for bind; `rw` makes it writable).
        readonly: bool,
    },
    /// `type=cache`
    Cache {
        /// `target` (required)
        target: String,
        /// `id`
        #[serde(default)]
        id: Option<String>,
        /// `sharing` (default shared)
        #[serde(default)]
        sharing: Sharing,
        /// `from`
        #[serde(default)]
        from: Option<String>,
        /// `source`
        #[serde(default)]
        source: Option<String>,
        /// Read-only (default false).
        readonly: bool,
        /// `mode` (octal), raw
        #[serde(default)]
        mode: Option<String>,
        /// `uid`, raw
        #[serde(default)]
        uid: Option<String>,
        /// `gid`, raw
        #[serde(default)]
        gid: Option<String>,
    },
    /// `type=tmpfs`
    Tmpfs {
        /// `target` (required)
        target: String,
        /// `size` (bytes with optional unit), raw
        #[serde(default)]
        size: Option<String>,
        /// Read-only (default false).
        readonly: bool,
    },
    /// `type=secret`
    Secret {
        /// `id`
        #[serde(default)]
        id: Option<String>,
        /// `target`
        #[serde(default)]
        target: Option<String>,
        /// `env` (expose the secret as this environment variable)
        #[serde(default)]
        env: Option<String>,
        /// `required`
        #[serde(default)]
        required: bool,
        /// `mode` (octal), raw
        #[serde(default)]
        mode: Option<String>,
        /// `uid`, raw
        #[serde(default)]
        uid: Option<String>,
        /// `gid`, raw
        #[serde(default)]
        gid: Option<String>,
    },
    /// `type=ssh`
    Ssh {
        /// `id`
        #[serde(default)]
        id: Option<String>,
        /// `target`
        #[serde(default)]
        target: Option<String>,
        /// `required`
        #[serde(default)]
        required: bool,
        /// `mode` (octal), raw
        #[serde(default)]
        mode: Option<String>,
        /// `uid`, raw
        #[serde(default)]
        uid: Option<String>,
        /// `gid`, raw
        #[serde(default)]
        gid: Option<String>,
    },
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// `shared` (default)
    #[default]
    Shared,
    /// `private`
    Private,
    /// `locked`
    Locked,
}

/// HEALTHCHECK body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD command`
    Cmd {
        /// `--interval`, nanoseconds (0 or absent: inherit/default)
        #[serde(default)]
        interval: Option<u64>,
        /// `--timeout`, nanoseconds
        #[serde(default)]
        timeout: Option<u64>,
        /// `--start-period`, nanoseconds
        #[serde(default)]
        start_period: Option<u64>,
        /// `--start-interval`, nanoseconds
        #[serde(default)]
        start_interval: Option<u64>,
        /// `--retries`
        #[serde(default)]
        retries: Option<u32>,
        /// Shell form (becomes `CMD-SHELL`) or exec form (`CMD`).
        command: Command,
    },
}
