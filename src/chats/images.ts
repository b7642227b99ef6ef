import type { ImageInput, ImageMediaType } from '../protocol/chat.js';
import type { ImageToStore } from '../store/messages.repository.js';
import { ChatError } from '../protocol/errors.js';

export interface ImageLimits {
  maxCount: number;
  maxBytes: number;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The first bytes each accepted format starts with: the declared type must match what the bytes are. */
const MAGIC: Record<ImageMediaType, (b: Buffer) => boolean> = {
  'image/png': (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  'image/jpeg': (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  'image/gif': (b) => ['GIF87a', 'GIF89a'].includes(b.subarray(0, 6).toString('latin1')),
  'image/webp': (b) => b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP',
};

/**
 * Decodes and checks the images of a chat message: count, strict base64 (a `data:` URL prefix is accepted and
 * removed, as browsers produce it), decoded size, and that the bytes really are the declared format.
 */
export function decodeImages(images: ImageInput[] | undefined, limits: ImageLimits): ImageToStore[] {
  if (!images || images.length === 0) return [];
  if (images.length > limits.maxCount) {
    throw new ChatError('invalid_image', `too many images: ${images.length} (at most ${limits.maxCount} per message)`);
  }
  return images.map((image, i) => {
    const base64 = image.base64.replace(/^data:[^;,]*;base64,/, '').replace(/\s+/g, '');
    if (base64.length % 4 === 1 || !BASE64.test(base64)) {
      throw new ChatError('invalid_image', `image ${i + 1}: not valid base64`);
    }
    // Checked before decoding so an oversized upload is refused without allocating it.
    if (Math.floor((base64.length * 3) / 4) - 2 > limits.maxBytes) {
      throw new ChatError('invalid_image', `image ${i + 1}: larger than ${limits.maxBytes} bytes`);
    }
    const data = Buffer.from(base64, 'base64');
    if (data.length === 0) throw new ChatError('invalid_image', `image ${i + 1}: empty`);
    if (data.length > limits.maxBytes) {
      throw new ChatError('invalid_image', `image ${i + 1}: ${data.length} bytes, larger than ${limits.maxBytes}`);
    }
    if (!MAGIC[image.media_type](data)) {
      throw new ChatError('invalid_image', `image ${i + 1}: the bytes are not ${image.media_type}`);
    }
    return { mediaType: image.media_type, data };
  });
}
