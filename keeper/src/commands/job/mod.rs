//! `rbee job …`: list, inspect, cancel and attach to hive jobs.

mod attach;
mod cancel;
mod list;
mod status;

use super::Ctx;

verbs! {
    JobCommand {
        /// List the hive's jobs
        #[command(visible_alias = "ls")]
        List(list::Args),
        /// Show one job's status
        Status(status::Args),
        /// Cancel a running job
        Cancel(cancel::Args),
        /// Follow a job's events from the start, as `model download` does
        Attach(attach::Args),
    }
}
