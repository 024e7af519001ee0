/**
 * Country calling codes (ITU-T E.164 assigned codes in service), to tell which country an E.164
 * number is in: the SMS spend guard (HATCH_SMS_ALLOWED_COUNTRIES) allows or refuses a send by it.
 *
 * Calling codes are 1 to 3 digits and prefix-free (no code is the beginning of another: `1` and
 * `7` have no longer siblings, `35x` exists because `35` does not), so the code of a number is
 * its one prefix of 1, 2 or 3 digits found here. The list is the set libphonenumber routes
 * (google-libphonenumber 3.2.47 `getSupportedCallingCodes()`, checked when this was written):
 * every geographic code plus the global services (800 freephone, 808 shared cost, 870 Inmarsat,
 * 878, 881–883 satellite and international networks, 888, 979 premium rate). Codes reserved but
 * not dialled (379 Vatican, which uses 39; 997 Kazakhstan, which uses 7) are left out.
 *
 * A hand table, not a library: @hatch/contracts depends on typebox only and is bundled into the
 * web UI, and the guard needs the calling code alone, not per-country number validation
 * (libphonenumber's metadata is 100+ KiB for that).
 */
export const COUNTRY_CALLING_CODES: readonly string[] = [
  // zone 1: the North American Numbering Plan (the US, Canada and 20+ Caribbean countries)
  '1',
  // zone 2: Africa and a few islands
  '20', '211', '212', '213', '216', '218', '220', '221', '222', '223', '224', '225', '226', '227', '228', '229',
  '230', '231', '232', '233', '234', '235', '236', '237', '238', '239', '240', '241', '242', '243', '244', '245',
  '246', '247', '248', '249', '250', '251', '252', '253', '254', '255', '256', '257', '258', '260', '261', '262',
  '263', '264', '265', '266', '267', '268', '269', '27', '290', '291', '297', '298', '299',
  // zones 3 and 4: Europe
  '30', '31', '32', '33', '34', '350', '351', '352', '353', '354', '355', '356', '357', '358', '359', '36',
  '370', '371', '372', '373', '374', '375', '376', '377', '378', '380', '381', '382', '383', '385', '386', '387',
  '389', '39', '40', '41', '420', '421', '423', '43', '44', '45', '46', '47', '48', '49',
  // zone 5: Central and South America
  '500', '501', '502', '503', '504', '505', '506', '507', '508', '509', '51', '52', '53', '54', '55', '56', '57',
  '58', '590', '591', '592', '593', '594', '595', '596', '597', '598', '599',
  // zone 6: South-East Asia and Oceania
  '60', '61', '62', '63', '64', '65', '66', '670', '672', '673', '674', '675', '676', '677', '678', '679', '680',
  '681', '682', '683', '685', '686', '687', '688', '689', '690', '691', '692',
  // zone 7: Russia and Kazakhstan
  '7',
  // zone 8: East Asia and global services
  '800', '808', '81', '82', '84', '850', '852', '853', '855', '856', '86', '870', '878', '880', '881', '882', '883',
  '886', '888',
  // zone 9: West, Central and South Asia, the Middle East
  '90', '91', '92', '93', '94', '95', '960', '961', '962', '963', '964', '965', '966', '967', '968', '970', '971',
  '972', '973', '974', '975', '976', '977', '979', '98', '992', '993', '994', '995', '996', '998',
];

const CODES = new Set(COUNTRY_CALLING_CODES);

export function isCountryCallingCode(code: string): boolean {
  return CODES.has(code);
}

/**
 * The calling code of an E.164 number (`+447700900123` → `44`), or undefined when its first
 * digits are no assigned code (or it is not `+` and digits).
 */
export function countryCallingCode(e164: string): string | undefined {
  if (!/^\+[0-9]+$/.test(e164)) return undefined;
  for (let len = 1; len <= 3; len++) {
    const prefix = e164.slice(1, 1 + len);
    if (CODES.has(prefix)) return prefix;
  }
  return undefined;
}
