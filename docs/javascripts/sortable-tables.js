// Sorts a table with data-sortable by the clicked header (the leaderboard, docs/leaderboard.md): each sortable
// <th> names its column in data-column, each cell holds its sort key in data-value (numbers compare as numbers,
// empty keys go last). The first click puts the best first (data-better: "higher" sorts descending, else
// ascending); each further click reverses the order. Local, no library, nothing fetched.
(function () {
  "use strict";

  function key(row, column) {
    const text = row.cells[column] ? row.cells[column].dataset.value : undefined;
    if (text === undefined || text === "") return null;
    const number = Number(text);
    return Number.isNaN(number) ? text : number;
  }

  function compare(a, b) {
    if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function sortBy(table, header) {
    const column = Number(header.dataset.column);
    const previous = header.getAttribute("aria-sort");
    const descending = previous ? previous === "ascending" : header.dataset.better === "higher";
    table.querySelectorAll("th[aria-sort]").forEach((other) => other.removeAttribute("aria-sort"));
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows).map((row, index) => ({ row, index, key: key(row, column) }));
    rows.sort((a, b) => {
      const empty = (a.key === null) - (b.key === null); // empty keys last in either direction
      const order = empty || (descending ? -compare(a.key, b.key) : compare(a.key, b.key));
      return order || a.index - b.index; // stable
    });
    rows.forEach(({ row }) => body.appendChild(row));
  }

  function makeSortable(table) {
    if (table.dataset.sortableReady) return;
    table.dataset.sortableReady = "true";
    table.querySelectorAll("th[data-column]").forEach((header) => {
      header.style.cursor = "pointer";
      header.title = "sort by this column (click again to reverse)";
      header.addEventListener("click", () => sortBy(table, header));
    });
  }

  function setUp() {
    document.querySelectorAll("table[data-sortable]").forEach(makeSortable);
  }

  if (typeof document$ !== "undefined") {
    document$.subscribe(setUp); // Material's page-load stream (also after instant navigation)
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
