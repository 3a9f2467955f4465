//! Conditions of a running execution (DESIGN.md §5): the kinds, one holding now, one kept in
//! the record after it cleared. How they are detected is [`crate::tracker::detect`].

use serde::{Deserialize, Serialize};

/// What kind of condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// No progress, or hosts all ended while the job runs.
    Stuck,
    /// Some hosts lag far behind the others.
    Stragglers,
    /// The platform has not answered for a while.
    PlatformUnreachable,
}

impl ConditionKind {
    /// Every kind (a closed label set).
    pub const ALL: [ConditionKind; 3] = [
        ConditionKind::Stuck,
        ConditionKind::Stragglers,
        ConditionKind::PlatformUnreachable,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::Stuck => "stuck",
            ConditionKind::Stragglers => "stragglers",
            ConditionKind::PlatformUnreachable => "platform_unreachable",
        }
    }
}

/// A condition holding now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Condition {
    /// Which.
    pub kind: ConditionKind,
    /// When it started to hold (Unix ms): the moment its cause began, not when it was noticed.
    pub since_ms: i64,
    /// Why, in words.
    pub detail: String,
    /// The hosts it is about (stragglers), as shown in reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

impl std::fmt::Display for Condition {
    /// `kind: detail`, as the progress display, the pages and the board show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

/// A condition that held during the run, kept in the execution's record after it cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PastCondition {
    /// The condition as last seen while it held.
    #[serde(flatten)]
    pub condition: Condition,
    /// When it cleared (Unix ms); `None` while it holds.
    pub cleared_ms: Option<i64>,
}
