import t from 'tap';
import { COUNTRY_CALLING_CODES, countryCallingCode, isCountryCallingCode } from '../src/index.js';

t.test('calling codes are 1-3 digits, unique and prefix-free, so a number has exactly one', async (t) => {
  t.equal(new Set(COUNTRY_CALLING_CODES).size, COUNTRY_CALLING_CODES.length, 'no duplicates');
  for (const code of COUNTRY_CALLING_CODES) {
    t.match(code, /^[1-9][0-9]{0,2}$/);
    const longer = COUNTRY_CALLING_CODES.filter((c) => c !== code && c.startsWith(code));
    t.same(longer, [], `no code begins with ${code}`);
  }
  t.equal(COUNTRY_CALLING_CODES.length, 215, "the codes in service (libphonenumber's set)");
});

t.test('countryCallingCode finds the code of 1, 2 and 3 digits', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['+14155550100', '1'], // US
    ['+18765550100', '1'], // Jamaica is in the NANP too: calling code 1
    ['+79161234567', '7'], // Russia
    ['+447700900123', '44'], // UK
    ['+33612345678', '33'], // France
    ['+201001234567', '20'], // Egypt
    ['+27821234567', '27'], // South Africa
    ['+35312345678', '353'], // Ireland
    ['+380501234567', '380'], // Ukraine
    ['+4201234567', '420'], // Czechia
    ['+88212345678', '882'], // international networks
    ['+99912345678', undefined], // 999 is no code
    ['+2101234567', undefined], // 210 is unassigned
    ['+42212345678', undefined], // 422 is spare
    ['14155550100', undefined],
    ['+', undefined],
  ];
  for (const [number, code] of cases) t.equal(countryCallingCode(number), code, number);
  t.ok(isCountryCallingCode('44'));
  t.notOk(isCountryCallingCode('4'));
  t.notOk(isCountryCallingCode('044'));
});
