//! Writes a 4×3 RGB JPEG to stdout: the JPEG seed of the image fuzz target (see seeds.py).
fn main() {
    let img = image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([(x * 60) as u8, (y * 80) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("encode");
    std::io::Write::write_all(&mut std::io::stdout(), out.get_ref()).expect("stdout");
}
