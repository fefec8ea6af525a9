// Reading a certificate's QR code from a photo, on the tablet: the browser's BarcodeDetector where it has one
// (Android Chrome), else jsQR on the picture's pixels.
import jsQR from 'jsqr';

const MAX_SIDE = 1600; // enough for a certificate held up to the camera; bounds the work on a 12 MP photo

async function pixels(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(width, height)
    : Object.assign(document.createElement('canvas'), { width, height });
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0, width, height);
  bitmap.close?.();
  return { bitmap: canvas, data: context.getImageData(0, 0, width, height) };
}

/** The text of the first QR code in the picture, or null (none found, or the picture cannot be decoded). */
export async function readQr(file) {
  let picture;
  try {
    picture = await pixels(file);
  } catch {
    return null;
  }
  if ('BarcodeDetector' in globalThis) {
    try {
      const detector = new globalThis.BarcodeDetector({ formats: ['qr_code'] });
      const codes = await detector.detect(picture.bitmap);
      if (codes.length) return codes[0].rawValue;
    } catch {
      // Some platforms list the API without a QR engine: fall through to jsQR.
    }
  }
  const { data, width, height } = picture.data;
  const code = jsQR(data, width, height, { inversionAttempts: 'attemptBoth' });
  return code ? code.data : null;
}

/**
 * What the certificate read means for this inspector today. `certificates` are the pulled certificate records,
 * `team` the task's members (with their certificate numbers), `today` the office day (YYYY-MM-DD).
 * Returns {state: 'ok'|'not-own'|'unknown'|'invalid'|'no-qr', number, holder, why?}.
 */
export function judgeCertificate(text, { certificates, team, userId, today }) {
  if (!text) return { state: 'no-qr' };
  const number = text.trim();
  const certificate = certificates.find((c) => c.number === number);
  const member = team.find((m) => m.certificate_number === number);
  if (!certificate && !member) return { state: 'unknown', number };
  const holderId = certificate?.holder_id ?? member?.user_id;
  const holder = team.find((m) => m.user_id === holderId);
  const holderName = holder?.full_name || holder?.username || '';
  if (holderId !== userId) return { state: 'not-own', number, holder: holderName };
  const status = certificate?.status ?? member?.certificate_status;
  if (status && status !== 'valid') return { state: 'invalid', number, holder: holderName, why: { status } };
  if (certificate && today < certificate.valid_from) {
    return { state: 'invalid', number, holder: holderName, why: { from: certificate.valid_from } };
  }
  if (certificate && today > certificate.valid_until) {
    return { state: 'invalid', number, holder: holderName, why: { until: certificate.valid_until } };
  }
  return { state: 'ok', number, holder: holderName };
}
