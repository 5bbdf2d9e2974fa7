// The image fixtures the encode tests feed through every decoder: PNG by path and as bytes, a JPEG
// with EXIF orientation, WebP with alpha, an animated GIF (first frame).
import { readFileSync } from 'node:fs';
import path from 'node:path';

const FIX = path.join(__dirname, '..', 'fixtures');

/** Five images of different formats (one given as a Buffer, the rest as paths). */
export function mixedImages(): Array<string | Buffer> {
  return [
    path.join(FIX, 'images', 'chelsea.png'),
    readFileSync(path.join(FIX, 'images', 'camera.png')),
    path.join(FIX, 'pil', 'exif6.jpg'),
    path.join(FIX, 'pil', 'rgba.webp'),
    path.join(FIX, 'pil', 'anim.gif'),
  ];
}
