// How numbers, times and durations read in the console.

export function credits(value) {
  // Credits are kept to the millicredit; show what matters without float noise.
  return Number(value).toLocaleString("en", { maximumFractionDigits: 3 });
}

export function dateTime(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "";
  return new Date(unixSeconds * 1000).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  return `${hours} h ${m % 60} min`;
}

export function ago(unixSeconds) {
  return `${duration(Date.now() / 1000 - unixSeconds)} ago`;
}
