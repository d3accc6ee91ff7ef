//! What an installation needs from the binary itself: shell completions
//! (`lasagna completions SHELL`, clap_complete) and man pages (`lasagna man DIR`,
//! clap_mangen: lasagna(1), one page per subcommand, and lasagna-profile(5), the profile
//! format, from the commented reference). `make man completions install` call these.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, Error};

pub fn completions(shell: clap_complete::Shell) -> Result<i32, Error> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "lasagna", &mut std::io::stdout());
    Ok(0)
}

pub fn man(dir: &Path) -> Result<i32, Error> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let cmd = Cli::command();
    let write = |name: &str, page: &clap::Command| -> Result<(), Error> {
        let mut out = Vec::new();
        clap_mangen::Man::new(page.clone())
            .title(name.to_uppercase())
            .section("1")
            .manual("lasagna")
            .render(&mut out)
            .map_err(io)?;
        std::fs::write(dir.join(format!("{name}.1")), out).map_err(io)
    };
    write("lasagna", &cmd)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names are &'static; this runs once per page, in a short-lived process.
        let name: &'static str = Box::leak(format!("lasagna-{}", sub.get_name()).into_boxed_str());
        write(name, &sub.clone().name(name))?;
    }
    let mut f = std::fs::File::create(dir.join("lasagna-profile.5")).map_err(io)?;
    f.write_all(profile_page().as_bytes()).map_err(io)?;
    println!("{}", dir.display());
    Ok(0)
}

/// lasagna-profile(5): the format, with the commented reference as its body.
fn profile_page() -> String {
    let mut out = String::from(
        ".TH LASAGNA-PROFILE 5 \"\" \"lasagna\" \"File formats\"\n\
         .SH NAME\nlasagna-profile \\- lasagna sandbox profile format\n\
         .SH DESCRIPTION\n\
         A profile is one YAML document: a name, a description, an optional \\fBextends\\fR \
         chain, an optional default \\fBcommand\\fR, and under \\fBlayers\\fR one optional \
         section per defense layer (network, namespaces, filesystem, cgroups, capabilities, \
         rlimits, process, landlock, seccomp). Unknown and duplicate keys are errors; every \
         error names file, line and column. Values may use ${HOME}, ${CWD}, ${USER}, ${UID}, \
         ${GID}, ${XDG_RUNTIME_DIR}, ${XDG_CONFIG_HOME}, ${XDG_CACHE_HOME}, ${PROFILE_DIR} and \
         ${ENV:NAME[:-default]}.\n\
         .PP\nProfiles given by name are looked up in $XDG_CONFIG_HOME/lasagna/profiles, then \
         /etc/lasagna/profiles, then among the shipped ones; a NAME.local.yaml in either \
         directory is merged on top of NAME. \\fBlasagna schema \\-\\-json\\fR prints the \
         JSON Schema (installed as /usr/share/lasagna/profile.schema.json).\n\
         .SH REFERENCE\nEvery key, with its default and meaning (\\fBlasagna schema\\fR):\n\
         .PP\n.nf\n",
    );
    for line in include_str!("../../profiles/REFERENCE.yaml").lines() {
        let line = line.replace('\\', "\\e");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(".fi\n.SH SEE ALSO\n\\fBlasagna\\fR(1), \\fBlasagna-run\\fR(1)\n");
    out
}
