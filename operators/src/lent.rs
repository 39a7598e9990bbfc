//! The context's lists, lent to the indexer while it builds: every entry it reads is
//! counted, so a test can hold the work of indexing to the size of the lists. A step
//! that scans a list once per station reads stations × entries; at 100,000 stations
//! that is billions against hundreds of thousands, and the count shows it where a
//! timing would only suggest it. While lent, the lists are out of the context: a scan of
//! the context's own list finds nothing, and the index it builds is wrong.

use std::cell::Cell;

use stationflow_schemas::context::{
    Context, DowntimeCause, PlannedStop, Plant, ScheduleEntry, Sku, Station,
};

/// One list of the context, counting the entries read from it.
pub(crate) struct Lent<'r, T> {
    items: Vec<T>,
    reads: &'r Cell<usize>,
}

impl<'r, T> Lent<'r, T> {
    pub(crate) fn new(items: Vec<T>, reads: &'r Cell<usize>) -> Self {
        Lent { items, reads }
    }

    /// Every entry, in order, each read counted.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().inspect(|_| self.count())
    }

    /// The entry at `position`, counted.
    pub(crate) fn at(&self, position: usize) -> &T {
        self.count();
        &self.items[position]
    }

    fn count(&self) {
        self.reads.set(self.reads.get() + 1);
    }
}

/// The lists an index is built from.
pub(crate) struct LentLists<'r> {
    pub plants: Lent<'r, Plant>,
    pub skus: Lent<'r, Sku>,
    pub stations: Lent<'r, Station>,
    pub schedule: Lent<'r, ScheduleEntry>,
    pub planned_stops: Lent<'r, PlannedStop>,
    pub downtime_causes: Lent<'r, DowntimeCause>,
}

impl<'r> LentLists<'r> {
    /// Takes the lists out of `context`, counting reads into `reads`.
    pub(crate) fn take(context: &mut Context, reads: &'r Cell<usize>) -> Self {
        LentLists {
            plants: Lent::new(std::mem::take(&mut context.plants), reads),
            skus: Lent::new(std::mem::take(&mut context.skus), reads),
            stations: Lent::new(std::mem::take(&mut context.stations), reads),
            schedule: Lent::new(std::mem::take(&mut context.schedule), reads),
            planned_stops: Lent::new(std::mem::take(&mut context.planned_stops), reads),
            downtime_causes: Lent::new(std::mem::take(&mut context.downtime_causes), reads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_counted_and_the_lists_are_out_of_the_context() {
        let mut context = crate::synthetic::plant(4);
        let reads = Cell::new(0);
        let lists = LentLists::take(&mut context, &reads);
        assert!(context.stations.is_empty() && context.schedule.is_empty());
        assert_eq!(lists.stations.iter().count(), 4);
        let _ = lists.stations.at(2);
        assert_eq!(reads.get(), 5);
    }
}
