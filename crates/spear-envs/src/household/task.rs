//! The six ALFWorld task types (`shared/docs/environments.md` §1.4).

use std::fmt;

/// An ALFWorld task type (`alfred_tw_env.TASK_TYPES`, ids 1–6); serialised as
/// [`TaskType::as_str`] (the trainer's `env.household.task_types`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    /// 1: put an object in a receptacle.
    PickAndPlaceSimple,
    /// 2: hold an object while a lamp is on at the agent's location.
    LookAtObjInLight,
    /// 3: clean, then place.
    PickCleanThenPlaceInRecep,
    /// 4: heat, then place.
    PickHeatThenPlaceInRecep,
    /// 5: cool, then place.
    PickCoolThenPlaceInRecep,
    /// 6: two objects of a type in one receptacle.
    PickTwoObjAndPlace,
}

impl TaskType {
    /// All six, in ALFWorld's id order.
    pub const ALL: [TaskType; 6] = [
        TaskType::PickAndPlaceSimple,
        TaskType::LookAtObjInLight,
        TaskType::PickCleanThenPlaceInRecep,
        TaskType::PickHeatThenPlaceInRecep,
        TaskType::PickCoolThenPlaceInRecep,
        TaskType::PickTwoObjAndPlace,
    ];

    /// The directory-name / `traj_data.json` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::PickAndPlaceSimple => "pick_and_place_simple",
            TaskType::LookAtObjInLight => "look_at_obj_in_light",
            TaskType::PickCleanThenPlaceInRecep => "pick_clean_then_place_in_recep",
            TaskType::PickHeatThenPlaceInRecep => "pick_heat_then_place_in_recep",
            TaskType::PickCoolThenPlaceInRecep => "pick_cool_then_place_in_recep",
            TaskType::PickTwoObjAndPlace => "pick_two_obj_and_place",
        }
    }

    /// Parse the spelling used in directory names and `traj_data.json`.
    pub fn parse(s: &str) -> Option<TaskType> {
        TaskType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The task type a trial directory name starts with
    /// (`pick_heat_then_place_in_recep-Egg-None-Fridge-13`).
    pub fn from_dir_name(name: &str) -> Option<TaskType> {
        TaskType::parse(name.split('-').next()?)
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names() {
        for t in TaskType::ALL {
            assert_eq!(TaskType::parse(t.as_str()), Some(t));
        }
        assert_eq!(
            TaskType::from_dir_name("pick_two_obj_and_place-Apple-None-Fridge-13"),
            Some(TaskType::PickTwoObjAndPlace)
        );
        assert_eq!(TaskType::from_dir_name("pick_x-Apple"), None);
    }
}
